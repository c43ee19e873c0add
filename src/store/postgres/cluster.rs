//! What the servers sharing one PostgreSQL database need of it: the leader's role and
//! settlement's (each a session advisory lock held by a connection of its own, and a term in
//! its `leadership` row that fences off the writes of a holder that has been replaced),
//! notices between servers (LISTEN/NOTIFY), and a ping for health.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Client, db_error};
use crate::store::{Leader, Notice, StoreError, StoreResult};

/// The NOTIFY channel every server listens on.
const CHANNEL: &str = "singularity";
/// A NOTIFY payload must stay under 8,000 bytes; longer lists of lamps are split.
const MAX_PAYLOAD: usize = 7_000;
/// A leader whose heartbeat takes longer than this lets the role go rather than act on a
/// role it may have lost.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Taking the role waits for the writes a replaced leader has in flight (its fenced
/// transactions hold the row); it gives up after this and tries again.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// The database drops the role of a leader whose connection went silent (a dead machine, a
/// cut cable) after about idle + interval x count seconds: well inside the 15 s a follower
/// has to take over.
const ROLE_KEEPALIVES: &str =
    "-c tcp_keepalives_idle=4 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3";
/// Notices that may wait for a slow subscriber before it misses some.
const NOTICE_BUFFER: usize = 4_096;

pub(super) struct Cluster {
    url: String,
    /// Marks this process's notices, so it does not act on its own.
    origin: String,
    /// The leader's role (judging reports, the sweep, retention; settlement too unless a
    /// process settles under `settlement`).
    leader: Office,
    /// Settlement, when a process serving billing apart from telemetry settles energy.
    settlement: Office,
    notices: broadcast::Sender<Notice>,
    listening: AtomicBool,
}

/// Which of the roles a process may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Duty {
    Leader,
    Settlement,
}

/// One role: an advisory lock held by a connection of its own, and a row of `leadership`
/// whose term fences the role's writes.
struct Office {
    /// The role's row in `leadership`.
    row: i16,
    lock_key: i64,
    /// What the role is, for logs.
    what: &'static str,
    /// The connection holding (or trying for) the role, and whether it holds it.
    role: tokio::sync::Mutex<Role>,
    /// The term this process holds the role in; 0 while it does not.
    term: AtomicI64,
    /// Set by the first campaign: from then on the role's writes are fenced by the term.
    campaigned: AtomicBool,
}

#[derive(Default)]
struct Role {
    connection: Option<Client>,
    leading: bool,
}

impl Cluster {
    pub(super) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            origin: format!("{:016x}", rand::random::<u64>()),
            leader: Office::new(1, super::lock_keys::LEADER, "leader's role"),
            settlement: Office::new(2, super::lock_keys::SETTLEMENT, "settlement's role"),
            notices: broadcast::channel(NOTICE_BUFFER).0,
            listening: AtomicBool::new(false),
        }
    }

    fn office(&self, duty: Duty) -> &Office {
        match duty {
            Duty::Leader => &self.leader,
            Duty::Settlement => &self.settlement,
        }
    }

    /// The row and term a write of `duty` must still be current in, or `None` when this
    /// store has never campaigned for it (a tool loading data, a test): such writes are not
    /// fenced. Settlement's writes are the leader's unless this process campaigned for
    /// settlement itself.
    pub(super) fn fence(&self, duty: Duty) -> Option<(i16, i64)> {
        let office = match duty {
            Duty::Settlement if self.settlement.campaigned.load(Ordering::Acquire) => {
                &self.settlement
            }
            _ => &self.leader,
        };
        office
            .campaigned
            .load(Ordering::Acquire)
            .then(|| (office.row, office.term.load(Ordering::Acquire)))
    }

    pub(super) async fn campaign(
        self: Arc<Self>,
        duty: Duty,
        address: String,
    ) -> StoreResult<Option<Leader>> {
        self.office(duty).campaign(&self.url, &address).await
    }

    /// Lets the role go by closing its connection (the lock goes with the session). Until
    /// it campaigns again, this store's writes of the role are no longer fenced.
    pub(super) async fn resign(&self, duty: Duty) {
        self.office(duty).resign().await;
    }

    /// The notices of the other servers, listening from the first call on.
    pub(super) fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Notice> {
        let receiver = self.notices.subscribe();
        if !self.listening.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().listen());
        }
        receiver
    }

    /// Listens until the store is dropped, connecting again whenever the connection is lost.
    async fn listen(self: Arc<Self>) {
        loop {
            if let Err(e) = self.listen_once().await {
                tracing::warn!(error = %e, "not hearing the other servers; listening again in 1 s");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn listen_once(&self) -> StoreResult<()> {
        let config: tokio_postgres::Config = self.url.parse().map_err(db_error)?;
        let (client, mut connection) = config.connect(NoTls).await.map_err(db_error)?;
        let (payloads, mut received) = mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if payloads.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the notice connection failed");
                        return;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(db_error)?;
        while let Some(payload) = received.recv().await {
            if let Some(notice) = decode(&self.origin, &payload) {
                // Nobody subscribed is fine.
                let _ = self.notices.send(notice);
            }
        }
        driver.abort();
        Err(StoreError::Database("the notice connection closed".into()))
    }

    /// The NOTIFY payloads announcing `notices`.
    pub(super) fn payloads(&self, notices: &[Notice]) -> Vec<String> {
        notices
            .iter()
            .flat_map(encode)
            .map(|body| format!("{}:{body}", self.origin))
            .collect()
    }
}

impl Office {
    fn new(row: i16, lock_key: i64, what: &'static str) -> Self {
        Self {
            row,
            lock_key,
            what,
            role: tokio::sync::Mutex::default(),
            term: AtomicI64::new(0),
            campaigned: AtomicBool::new(false),
        }
    }

    async fn campaign(&self, url: &str, address: &str) -> StoreResult<Option<Leader>> {
        self.campaigned.store(true, Ordering::Release);
        let mut role = self.role.lock().await;
        let limit = if role.leading {
            HEARTBEAT_TIMEOUT
        } else {
            TAKEOVER_TIMEOUT
        };
        let outcome = tokio::time::timeout(limit, self.campaign_on(&mut role, url, address))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Database(format!(
                    "the connection holding the {} did not answer within {} s",
                    self.what,
                    limit.as_secs()
                )))
            });
        if outcome.is_err() {
            // Closing the connection gives the role up; a new one is made next time.
            if role.leading {
                tracing::warn!("lost the connection that holds the {}", self.what);
            }
            *role = Role::default();
            self.term.store(0, Ordering::Release);
        }
        outcome
    }

    async fn campaign_on(
        &self,
        role: &mut Role,
        url: &str,
        address: &str,
    ) -> StoreResult<Option<Leader>> {
        if role.connection.as_ref().is_some_and(|c| c.is_closed()) {
            return Err(StoreError::Database(format!(
                "the connection that holds the {} closed",
                self.what
            )));
        }
        let connection = match role.connection.take() {
            Some(connection) => connection,
            None => super::connect_with(url, Some(ROLE_KEEPALIVES)).await?,
        };
        let connection = &*role.connection.insert(connection);
        let now = Utc::now().timestamp_millis();
        if role.leading {
            let term = self.term.load(Ordering::Acquire);
            let beat = connection
                .execute(
                    "UPDATE leadership SET heartbeat_ms = $1 WHERE id = $2 AND term = $3",
                    &[&now, &self.row, &term],
                )
                .await
                .map_err(db_error)?;
            if beat != 1 {
                return Err(StoreError::Database(format!(
                    "another server raised the term of the {}",
                    self.what
                )));
            }
            return Ok(Some(Leader {
                term,
                address: address.to_owned(),
                unheard_for: None,
            }));
        }
        let won: bool = connection
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.lock_key])
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
        if !won {
            return Ok(None);
        }
        // FOR UPDATE waits for the writes the previous holder has in flight (they hold the
        // row FOR KEY SHARE), and every write it tries after this commit sees the new term.
        connection.batch_execute("BEGIN").await.map_err(db_error)?;
        let taken = async {
            let before: i64 = connection
                .query_one(
                    "SELECT heartbeat_ms FROM leadership WHERE id = $1 FOR UPDATE",
                    &[&self.row],
                )
                .await?
                .try_get(0)?;
            let term: i64 = connection
                .query_one(
                    "UPDATE leadership SET term = term + 1, address = $1, heartbeat_ms = $2 \
                     WHERE id = $3 RETURNING term",
                    &[&address, &now, &self.row],
                )
                .await?
                .try_get(0)?;
            connection.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>((before, term))
        }
        .await;
        let (before, term) = taken.map_err(db_error)?;
        self.term.store(term, Ordering::Release);
        role.leading = true;
        Ok(Some(Leader {
            term,
            address: address.to_owned(),
            unheard_for: (before > 0).then(|| chrono::Duration::milliseconds(now - before)),
        }))
    }

    async fn resign(&self) {
        let mut role = self.role.lock().await;
        self.campaigned.store(false, Ordering::Release);
        if role.leading {
            tracing::info!("{} given up", self.what);
        }
        *role = Role::default();
        self.term.store(0, Ordering::Release);
    }
}

/// Sends the payloads in one statement (outside any transaction: they go at once).
pub(super) async fn notify(client: &Client, payloads: Vec<String>) -> StoreResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    client
        .execute(
            &format!("SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::text[]) AS p"),
            &[&payloads],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Refuses a role's write unless `term` is still current in the role's `row` (see
/// `Cluster::fence`). Holds the row until the transaction ends, so a takeover waits for it.
pub(super) async fn check_term(client: &Client, (row, term): (i16, i64)) -> StoreResult<()> {
    let statement = client
        .statement("SELECT 1 FROM leadership WHERE id = $1 AND term = $2 FOR KEY SHARE")
        .await?;
    let current = client
        .query_opt(&statement, &[&row, &term])
        .await
        .map_err(db_error)?;
    match (term, current) {
        (1.., Some(_)) => Ok(()),
        _ => Err(StoreError::NotLeader),
    }
}

/// The leader as recorded, if any server has ever led.
pub(super) async fn recorded_leader(client: &Client) -> StoreResult<Option<Leader>> {
    let row = client
        .query_one("SELECT term, address FROM leadership WHERE id = 1", &[])
        .await
        .map_err(db_error)?;
    let term: i64 = row.try_get(0).map_err(db_error)?;
    if term == 0 {
        return Ok(None);
    }
    Ok(Some(Leader {
        term,
        address: row.try_get(1).map_err(db_error)?,
        unheard_for: None,
    }))
}

/// One notice as payload bodies: a letter for the kind, then its data.
fn encode(notice: &Notice) -> Vec<String> {
    match notice {
        Notice::FaultLog => vec!["F".into()],
        Notice::Settled => vec!["S".into()],
        Notice::UserChanged(id) => vec![format!("U{id}")],
        Notice::SessionEnded(hash) => {
            vec![format!(
                "E{}",
                hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )]
        }
        Notice::SignInFailed { username, peer } => vec![format!(
            "L{} {username}",
            peer.map(|p| p.to_string()).unwrap_or_default()
        )],
        Notice::Readings(lamps) => {
            let mut bodies = Vec::new();
            let mut body = String::from("R");
            for lamp in lamps {
                if body.len() > MAX_PAYLOAD {
                    bodies.push(std::mem::replace(&mut body, String::from("R")));
                }
                if body.len() > 1 {
                    body.push(',');
                }
                body.push_str(&lamp.to_string());
            }
            if body.len() > 1 {
                bodies.push(body);
            }
            bodies
        }
    }
}

/// A payload from another server as a notice (`None`: this process's own, or unreadable).
fn decode(origin: &str, payload: &str) -> Option<Notice> {
    let (from, body) = payload.split_once(':')?;
    if from == origin {
        return None;
    }
    let mut chars = body.chars();
    let kind = chars.next()?;
    let data = chars.as_str();
    Some(match kind {
        'F' => Notice::FaultLog,
        'S' => Notice::Settled,
        'U' => Notice::UserChanged(data.parse().ok()?),
        'E' => Notice::SessionEnded(
            (0..data.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(data.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?,
        ),
        'L' => {
            let (peer, username) = data.split_once(' ')?;
            Notice::SignInFailed {
                username: username.to_owned(),
                peer: peer.parse::<IpAddr>().ok(),
            }
        }
        'R' => Notice::Readings(
            data.split(',')
                .map(|id| id.parse().ok())
                .collect::<Option<Vec<i64>>>()?,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_as_sent_and_never_by_their_sender() {
        let cluster = Cluster::new("postgres://nowhere/db");
        let lamps: Vec<i64> = (1_000_000..1_002_000).collect();
        let sent = vec![
            Notice::FaultLog,
            Notice::Settled,
            Notice::UserChanged(7),
            Notice::SessionEnded(vec![0, 1, 0xab, 0xff]),
            Notice::SignInFailed {
                username: "night shift".into(),
                peer: "10.0.0.9".parse().ok(),
            },
            Notice::SignInFailed {
                username: "ops".into(),
                peer: None,
            },
            Notice::Readings(lamps.clone()),
        ];
        let payloads = cluster.payloads(&sent);
        assert!(payloads.iter().all(|p| p.len() < 8_000));
        assert!(
            payloads
                .iter()
                .all(|p| decode(&cluster.origin, p).is_none())
        );
        let mut heard: Vec<Notice> = payloads
            .iter()
            .filter_map(|p| decode("elsewhere", p))
            .collect();
        // 2,000 lamp ids do not fit one payload: they arrive in parts, all of them.
        let parts = heard.split_off(6);
        assert!(parts.len() > 1);
        let mut lamps_heard = Vec::new();
        for part in parts {
            let Notice::Readings(ids) = part else {
                panic!("expected readings, got {part:?}");
            };
            lamps_heard.extend(ids);
        }
        assert_eq!(lamps_heard, lamps);
        assert_eq!(heard, sent[..6]);
    }
}
