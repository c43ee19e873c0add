//! The console's side of the network: one task per server stream (the fault feed, live billing
//! totals, the lamp pane), each reconnecting with backoff and reporting its link state, plus
//! a task per command. Tasks only send `NetEvent`s to the loop; they never touch its state.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::link::{AuthedChannel, TokenSlot};

use super::state::Verb;
use super::state::{Link, StreamName};
use super::update::{Command, NetEvent, Refusal, match_zone};
use crate::proto::{
    self, auth_client::AuthClient, billing_client::BillingClient, catalog_client::CatalogClient,
    faults_client::FaultsClient, lamps_client::LampsClient, presence_client::PresenceClient,
    telecells_client::TelecellsClient,
};

/// A lazily connected channel: calls connect (and reconnect) as they are made, to whichever
/// of the servers given is serving.
pub fn channel(server: &str, ca_pem: Option<&[u8]>) -> Result<Channel, String> {
    crate::link::lazy_channel(server, ca_pem, |endpoint| {
        endpoint
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
    })
}

/// Waits before the next attempt: 1 s, 2 s, 4 s ... up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

/// How often a stream whose session ended checks again (an admin may have restored it only
/// by a new session, so this is slow on purpose).
const SIGNED_OUT_RETRY: Duration = Duration::from_secs(300);

/// Reports the stream down and waits before the next attempt. A refused session (expired,
/// revoked) is reported as signed out, not as a connection problem: retrying soon will not
/// bring it back.
async fn down(
    events: &mpsc::Sender<NetEvent>,
    stream: StreamName,
    since: &mut Option<chrono::DateTime<Utc>>,
    attempt: &mut u32,
    status: &tonic::Status,
    renewed: &Notify,
) {
    let now = Utc::now();
    let since = *since.get_or_insert(now);
    let (link, wait) = if status.code() == Code::Unauthenticated {
        let link = Link::SignedOut {
            since,
            reason: status.message().to_owned(),
        };
        (link, SIGNED_OUT_RETRY)
    } else {
        let wait = backoff(*attempt);
        *attempt += 1;
        let link = Link::Down {
            since,
            retry_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
            error: status.message().to_owned(),
        };
        (link, wait)
    };
    let _ = events.send(NetEvent::Link(stream, link)).await;
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = renewed.notified() => {}
    }
}

/// Follows the fault feed for good: a snapshot of the active faults, then `Watch` from its
/// seq; after a drop, `Watch` resumes after the last event seen, so nothing is missed or
/// shown twice. A resume the log can no longer serve takes a fresh snapshot.
async fn follow_faults(
    channel: AuthedChannel,
    events: mpsc::Sender<NetEvent>,
    renewed: Arc<Notify>,
) {
    let mut faults = FaultsClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut catalog = CatalogClient::new(channel);
    let mut last_seq: Option<u64> = None;
    let (mut attempt, mut since) = (0u32, None);
    loop {
        if let Ok(zones) = catalog.list_zones(proto::ListZonesRequest {}).await {
            let _ = events.send(NetEvent::Zones(zones.into_inner().zones)).await;
        }
        let after = match last_seq {
            Some(seq) => seq,
            None => match snapshot(&mut faults).await {
                Ok((list, seq)) => {
                    if events
                        .send(NetEvent::Snapshot { faults: list, seq })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last_seq = Some(seq);
                    seq
                }
                Err(status) => {
                    down(
                        &events,
                        StreamName::Faults,
                        &mut since,
                        &mut attempt,
                        &status,
                        &renewed,
                    )
                    .await;
                    continue;
                }
            },
        };
        let request = proto::WatchFaultsRequest {
            after_seq: after,
            filter: None,
        };
        let mut stream = match faults.watch(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                down(
                    &events,
                    StreamName::Faults,
                    &mut since,
                    &mut attempt,
                    &status,
                    &renewed,
                )
                .await;
                continue;
            }
        };
        let _ = events
            .send(NetEvent::Link(StreamName::Faults, Link::Live))
            .await;
        (attempt, since) = (0, None);
        let ended = loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    last_seq = Some(event.seq.max(last_seq.unwrap_or(0)));
                    if events.send(NetEvent::Fault(event)).await.is_err() {
                        return;
                    }
                }
                Some(Err(status)) => break status,
                None => break tonic::Status::unavailable("the feed ended"),
            }
        };
        if ended.code() == Code::OutOfRange {
            last_seq = None;
        }
        down(
            &events,
            StreamName::Faults,
            &mut since,
            &mut attempt,
            &ended,
            &renewed,
        )
        .await;
    }
}

async fn snapshot(
    client: &mut FaultsClient<AuthedChannel>,
) -> Result<(Vec<proto::Fault>, u64), tonic::Status> {
    let states = [
        proto::FaultState::Open,
        proto::FaultState::Acknowledged,
        proto::FaultState::Assigned,
        proto::FaultState::Cleared,
    ];
    let request = proto::ListFaultsRequest {
        filter: Some(proto::FaultFilter {
            states: states.iter().map(|s| *s as i32).collect(),
            ..Default::default()
        }),
        page_size: Some(1_000),
        page_token: String::new(),
    };
    let mut pages = client.list(request).await?.into_inner();
    let mut all = Vec::new();
    let mut seq = None;
    while let Some(page) = pages.next().await {
        let page = page?;
        seq.get_or_insert(page.snapshot_seq);
        all.extend(page.items);
    }
    Ok((all, seq.unwrap_or(0)))
}

/// Follows today's and month-to-date totals by zone.
async fn follow_billing(
    channel: AuthedChannel,
    events: mpsc::Sender<NetEvent>,
    renewed: Arc<Notify>,
) {
    let mut client = BillingClient::new(channel);
    let (mut attempt, mut since) = (0u32, None);
    loop {
        let request = proto::WatchTotalsRequest {
            group_by: proto::GroupBy::Zone as i32,
            ..Default::default()
        };
        match client.watch_totals(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let _ = events
                    .send(NetEvent::Link(StreamName::Billing, Link::Live))
                    .await;
                (attempt, since) = (0, None);
                let ended = loop {
                    match stream.next().await {
                        Some(Ok(live)) => {
                            if events.send(NetEvent::LiveTotals(live)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(status)) => break status,
                        None => break tonic::Status::unavailable("the stream ended"),
                    }
                };
                down(
                    &events,
                    StreamName::Billing,
                    &mut since,
                    &mut attempt,
                    &ended,
                    &renewed,
                )
                .await;
            }
            Err(status) => {
                down(
                    &events,
                    StreamName::Billing,
                    &mut since,
                    &mut attempt,
                    &status,
                    &renewed,
                )
                .await;
            }
        }
    }
}

/// Follows the status of a zone's lamps (or one lamp), after sending their positions.
async fn follow_lamps(
    channel: AuthedChannel,
    events: mpsc::Sender<NetEvent>,
    renewed: Arc<Notify>,
    zone_id: i64,
    lamp_id: i64,
) {
    let mut lamps = LampsClient::new(channel).max_decoding_message_size(64 << 20);
    if zone_id > 0 {
        let mut points = Vec::new();
        if let Ok(pages) = lamps.list(proto::ListOptions::default()).await {
            let mut pages = pages.into_inner();
            while let Some(Ok(page)) = pages.next().await {
                points.extend(
                    page.items
                        .iter()
                        .filter(|l| l.zone_id == zone_id)
                        .filter_map(|l| l.location.as_ref().map(|p| (l.id, p.lat, p.lon))),
                );
            }
        }
        let _ = events.send(NetEvent::ZoneLamps { zone_id, points }).await;
    }
    let (mut attempt, mut since) = (0u32, None);
    loop {
        let request = if zone_id > 0 {
            proto::WatchStatusRequest {
                lamp_ids: Vec::new(),
                zone_id,
            }
        } else {
            proto::WatchStatusRequest {
                lamp_ids: vec![lamp_id],
                zone_id: 0,
            }
        };
        match lamps.watch_status(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let _ = events
                    .send(NetEvent::Link(StreamName::Lamp, Link::Live))
                    .await;
                (attempt, since) = (0, None);
                let ended = loop {
                    match stream.next().await {
                        Some(Ok(status)) => {
                            if events.send(NetEvent::LampStatus(status)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(status)) => break status,
                        None => break tonic::Status::unavailable("the stream ended"),
                    }
                };
                down(
                    &events,
                    StreamName::Lamp,
                    &mut since,
                    &mut attempt,
                    &ended,
                    &renewed,
                )
                .await;
            }
            Err(status) if status.code() == Code::InvalidArgument => {
                let _ = events
                    .send(NetEvent::Failed(status.message().to_owned()))
                    .await;
                return;
            }
            Err(status) => {
                down(
                    &events,
                    StreamName::Lamp,
                    &mut since,
                    &mut attempt,
                    &status,
                    &renewed,
                )
                .await;
            }
        }
    }
}

/// The console's session, shared by its tasks: the token every call carries, and a bell rung
/// when it is renewed so that streams waiting as signed out try again at once.
#[derive(Clone, Default)]
pub struct SignIn {
    pub slot: TokenSlot,
    pub renewed: Arc<Notify>,
}

/// Signs in again as `user`; the new token goes into the slot every link reads.
async fn sign_in_again(
    channel: AuthedChannel,
    sign_in: SignIn,
    user: String,
    password: String,
) -> NetEvent {
    let reply = AuthClient::new(channel)
        .login(proto::LoginRequest {
            username: user,
            password,
        })
        .await;
    match reply {
        Ok(session) => match sign_in.slot.set(Some(&session.into_inner().token)) {
            Ok(()) => {
                sign_in.renewed.notify_waiters();
                NetEvent::SignedIn
            }
            Err(e) => NetEvent::SignInRefused(e.to_string()),
        },
        Err(status) => NetEvent::SignInRefused(status.message().to_owned()),
    }
}

/// Network events the loop may fall behind by before the streams wait for it.
const EVENT_BUFFER: usize = 8_192;

/// Opens the console's side of the network: follows the fault feed and live billing totals,
/// and returns the runner of commands and the events for the loop. Every call carries the
/// token in `sign_in`.
pub fn start(
    channel: Channel,
    sign_in: SignIn,
    user: String,
) -> (Commands, mpsc::Receiver<NetEvent>) {
    let channel = crate::link::with_slot(channel, &sign_in.slot);
    let (events, net_rx) = mpsc::channel(EVENT_BUFFER);
    tokio::spawn(follow_faults(
        channel.clone(),
        events.clone(),
        sign_in.renewed.clone(),
    ));
    tokio::spawn(follow_billing(
        channel.clone(),
        events.clone(),
        sign_in.renewed.clone(),
    ));
    let (presence, wanted) = mpsc::unbounded_channel();
    tokio::spawn(share_presence(
        channel.clone(),
        events.clone(),
        wanted,
        sign_in.renewed.clone(),
    ));
    let mut commands = Commands::new(channel, events, user, sign_in);
    commands.presence = Some(presence);
    (commands, net_rx)
}

/// How often the console tells the server it is still there (the server forgets a console
/// silent for 30 s).
const PRESENCE_HEARTBEAT: Duration = Duration::from_secs(10);

/// Shares what this console has open and its claims, and reports everyone's presence. Each
/// connection starts by saying what is open now; a heartbeat repeats it; a claim is sent
/// once. After a drop it reconnects with backoff, quietly: presence is a courtesy, and the
/// fault feed's own state is what the status bar reports.
async fn share_presence(
    channel: AuthedChannel,
    events: mpsc::Sender<NetEvent>,
    mut wanted: mpsc::UnboundedReceiver<proto::PresenceUpdate>,
    renewed: Arc<Notify>,
) {
    let mut viewing = 0;
    let mut attempt = 0u32;
    loop {
        let (out, out_rx) = mpsc::channel::<proto::PresenceUpdate>(16);
        let _ = out.try_send(proto::PresenceUpdate {
            viewing_fault_id: viewing,
            ..Default::default()
        });
        let call = PresenceClient::new(channel.clone())
            .share(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await;
        if let Ok(boards) = call {
            attempt = 0;
            let mut boards = boards.into_inner();
            let mut heartbeat = tokio::time::interval(PRESENCE_HEARTBEAT);
            loop {
                tokio::select! {
                    board = boards.message() => match board {
                        Ok(Some(board)) => {
                            if events.send(NetEvent::Presence(board)).await.is_err() {
                                return;
                            }
                        }
                        _ => break,
                    },
                    update = wanted.recv() => {
                        let Some(update) = update else { return };
                        viewing = update.viewing_fault_id;
                        if out.send(update).await.is_err() {
                            break;
                        }
                    }
                    _ = heartbeat.tick() => {
                        let beat = proto::PresenceUpdate {
                            viewing_fault_id: viewing,
                            ..Default::default()
                        };
                        if out.send(beat).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let _ = events
            .send(NetEvent::Presence(proto::PresenceBoard::default()))
            .await;
        tokio::select! {
            () = tokio::time::sleep(backoff(attempt)) => {}
            () = renewed.notified() => {}
        }
        attempt += 1;
    }
}

/// Runs commands: triage, detail, Daily Faults, lamp lookups and billing periods.
pub struct Commands {
    pub channel: AuthedChannel,
    pub events: mpsc::Sender<NetEvent>,
    pub user: String,
    pub sign_in: SignIn,
    lamp_task: Option<JoinHandle<()>>,
    zones: Vec<proto::Zone>,
    /// What this console has open and claims, towards the presence stream.
    presence: Option<mpsc::UnboundedSender<proto::PresenceUpdate>>,
    /// Where saved views are kept (`views.toml` in the config directory).
    pub views_path: Option<std::path::PathBuf>,
}

impl Commands {
    pub fn new(
        channel: AuthedChannel,
        events: mpsc::Sender<NetEvent>,
        user: String,
        sign_in: SignIn,
    ) -> Self {
        Self {
            channel,
            events,
            user,
            sign_in,
            lamp_task: None,
            zones: Vec::new(),
            presence: None,
            views_path: None,
        }
    }

    pub fn run(&mut self, command: Command) {
        let (channel, events) = (self.channel.clone(), self.events.clone());
        match command {
            Command::WatchLamp(lamp_id) => {
                if let Some(task) = self.lamp_task.take() {
                    task.abort();
                }
                let events2 = events.clone();
                let renewed = self.sign_in.renewed.clone();
                self.lamp_task = Some(tokio::spawn(async move {
                    let zone_id = LampsClient::new(channel.clone())
                        .get(proto::IdRequest { id: lamp_id })
                        .await
                        .map(|l| l.into_inner().zone_id)
                        .unwrap_or(0);
                    follow_lamps(channel, events2, renewed, zone_id, lamp_id).await;
                }));
            }
            Command::WatchZone(zone_id) => self.watch_zone(zone_id),
            // Every stream waiting out its backoff wakes (the same wake-up a new sign-in uses).
            Command::Reconnect => self.sign_in.renewed.notify_waiters(),
            Command::Presence(update) => {
                if let Some(presence) = &self.presence {
                    let _ = presence.send(update);
                }
            }
            Command::SaveView { name, view } => {
                let said = match &self.views_path {
                    Some(path) => match super::views::save(path, &name, view) {
                        Ok(()) => NetEvent::Said(format!(
                            "view {name} saved in {}; :view {name} brings it back",
                            path.display()
                        )),
                        Err(e) => NetEvent::Failed(format!("view {name} not saved: {e}")),
                    },
                    None => NetEvent::Failed("no config directory to keep views in".to_owned()),
                };
                let _ = events.try_send(said);
            }
            Command::WriteText { path, text } => {
                let said = match std::fs::write(&path, text) {
                    Ok(()) => NetEvent::Said(format!("saved {}", path.display())),
                    Err(e) => NetEvent::Failed(format!("cannot write {}: {e}", path.display())),
                };
                let _ = events.try_send(said);
            }
            Command::LoadView(name) => {
                let read = match &self.views_path {
                    Some(path) => match super::views::load(path, &name) {
                        Ok(view) => NetEvent::View(name, view),
                        Err(e) => NetEvent::Failed(e),
                    },
                    None => NetEvent::Failed("no config directory to keep views in".to_owned()),
                };
                let _ = events.try_send(read);
            }
            Command::SignIn { password } => {
                let (sign_in, user) = (self.sign_in.clone(), self.user.clone());
                tokio::spawn(async move {
                    let _ = events
                        .send(sign_in_again(channel, sign_in, user, password).await)
                        .await;
                });
            }
            Command::FindLamp(query) => {
                let zones = self.zones.clone();
                tokio::spawn(async move {
                    let event = match find_lamp(channel, &query, zones).await {
                        Ok(event) => event,
                        Err(message) => NetEvent::LookupFailed(message),
                    };
                    let _ = events.send(event).await;
                });
            }
            Command::StopLamp => {
                if let Some(task) = self.lamp_task.take() {
                    task.abort();
                }
            }
            other => {
                tokio::spawn(async move {
                    let event = run_one(channel, other).await;
                    let _ = events.send(event).await;
                });
            }
        }
    }

    pub fn set_zones(&mut self, zones: &[proto::Zone]) {
        self.zones = zones.to_vec();
    }

    /// Follows a zone's lamps for the map, without a lamp of its own.
    pub fn watch_zone(&mut self, zone_id: i64) {
        if let Some(task) = self.lamp_task.take() {
            task.abort();
        }
        let (channel, events) = (self.channel.clone(), self.events.clone());
        self.lamp_task = Some(tokio::spawn(follow_lamps(
            channel,
            events,
            self.sign_in.renewed.clone(),
            zone_id,
            0,
        )));
    }
}

/// A lamp by id, by telecell uuid (or its start), or a zone by name. Always ends with an
/// answer: the zones are read if the console has none yet.
async fn find_lamp(
    channel: AuthedChannel,
    query: &str,
    mut zones: Vec<proto::Zone>,
) -> Result<NetEvent, String> {
    if let Ok(id) = query.parse::<i64>() {
        let lamp = LampsClient::new(channel)
            .get(proto::IdRequest { id })
            .await
            .map_err(|s| format!("lamp {id}: {}", s.message()))?;
        return Ok(NetEvent::Lamp(lamp.into_inner()));
    }
    if query.len() >= 8 && query.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        let mut pages = TelecellsClient::new(channel.clone())
            .list(proto::ListOptions::default())
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|s| s.message().to_owned())?;
            if let Some(telecell) = page.items.iter().find(|t| t.uuid.starts_with(query)) {
                let Some(id) = telecell.lamp_ids.first() else {
                    return Err(format!("telecell {} drives no lamp", telecell.uuid));
                };
                let lamp = LampsClient::new(channel)
                    .get(proto::IdRequest { id: *id })
                    .await
                    .map_err(|s| s.message().to_owned())?;
                return Ok(NetEvent::Lamp(lamp.into_inner()));
            }
        }
        return Err(format!("no telecell {query}"));
    }
    if zones.is_empty() {
        zones = CatalogClient::new(channel)
            .list_zones(proto::ListZonesRequest {})
            .await
            .map_err(|s| format!("cannot read the zones: {}", s.message()))?
            .into_inner()
            .zones;
    }
    match_zone(query, &zones).map(NetEvent::ZoneFound)
}

/// Daily Faults, totals, a lamp's energy and triage: one call (a triage action, one call per
/// fault), one event back.
async fn run_one(channel: AuthedChannel, command: Command) -> NetEvent {
    let mut faults = FaultsClient::new(channel.clone());
    match command {
        Command::Act {
            verb,
            targets,
            text,
        } => match act_on_many(&mut faults, verb, targets, &text).await {
            Ok((done, refused)) => NetEvent::Acted {
                verb,
                done,
                refused,
            },
            Err(status) => {
                NetEvent::Failed(format!("nothing was {}: {}", verb.past(), status.message()))
            }
        },
        Command::Handover { since, tz } => {
            let request = proto::HandoverRequest {
                since: Some(crate::wire::timestamp(since)),
                until: None,
                time_zone: tz,
            };
            match faults.handover(request).await {
                Ok(handover) => NetEvent::Handover(handover.into_inner()),
                Err(status) => NetEvent::Failed(format!("handover: {}", status.message())),
            }
        }
        Command::LoadDetail(id) => match faults.get(proto::GetFaultRequest { id }).await {
            Ok(detail) => NetEvent::Detail(detail.into_inner()),
            Err(status) => NetEvent::Failed(format!("fault {id}: {}", status.message())),
        },
        Command::Daily { date, tz } => {
            let request = proto::DailyFaultsRequest {
                date: date.to_string(),
                time_zone: tz,
            };
            match faults.daily_faults(request).await {
                Ok(daily) => NetEvent::Daily(daily.into_inner()),
                Err(status) => NetEvent::Failed(format!("Daily Faults: {}", status.message())),
            }
        }
        Command::Totals { from, to } => {
            let request = proto::GetTotalsRequest {
                from: from.to_string(),
                to: to.to_string(),
                group_by: proto::GroupBy::Zone as i32,
                ..Default::default()
            };
            match BillingClient::new(channel).get_totals(request).await {
                Ok(totals) => NetEvent::Totals(totals.into_inner()),
                Err(status) => NetEvent::Failed(format!("billing: {}", status.message())),
            }
        }
        Command::LampEnergy { lamp_id, date } => {
            let request = proto::GetLampEnergyRequest {
                lamp_id,
                date: date.to_string(),
            };
            match BillingClient::new(channel).get_lamp_energy(request).await {
                Ok(energy) => NetEvent::LampEnergy(energy.into_inner()),
                Err(status) => NetEvent::Failed(format!("lamp {lamp_id}: {}", status.message())),
            }
        }
        Command::FindLamp(_)
        | Command::Reconnect
        | Command::Presence(_)
        | Command::SaveView { .. }
        | Command::LoadView(_)
        | Command::WriteText { .. }
        | Command::WatchLamp(_)
        | Command::WatchZone(_)
        | Command::StopLamp
        | Command::SignIn { .. } => {
            NetEvent::Failed("internal: lamp commands run on their own task".to_owned())
        }
    }
}

/// One call for every fault of an action: a roll-up brings the lamp faults under it (the
/// operator confirmed their count). A refusal for a stale version or a state that does not
/// allow the action comes with the fault as it is now and the change that made it so.
async fn act_on_many(
    faults: &mut FaultsClient<AuthedChannel>,
    verb: Verb,
    targets: Vec<(i64, i64)>,
    text: &str,
) -> Result<(Vec<proto::Fault>, Vec<Refusal>), tonic::Status> {
    let (action, note, assignee) = match verb {
        Verb::Acknowledge => (proto::TriageAction::Acknowledge, "", ""),
        Verb::Resolve => (proto::TriageAction::Resolve, "", ""),
        Verb::Note => (proto::TriageAction::AddNote, text, ""),
        Verb::Assign => (proto::TriageAction::Assign, "", text),
    };
    let request = proto::ActOnManyRequest {
        action: action as i32,
        faults: targets
            .iter()
            .map(|(fault_id, expected_version)| proto::FaultAtVersion {
                fault_id: *fault_id,
                expected_version: *expected_version,
            })
            .collect(),
        include_children: true,
        note: note.to_owned(),
        assignee: assignee.to_owned(),
    };
    let reply = faults.act_on_many(request).await?.into_inner();
    let mut refused = Vec::with_capacity(reply.refused.len());
    for refusal in reply.refused {
        let mut explained = Refusal {
            fault_id: refusal.fault_id,
            reason: refusal.reason,
            changed_by: None,
            current: None,
        };
        let stale = refusal.code == "ABORTED";
        if (stale || refusal.code == "FAILED_PRECONDITION")
            && let Ok(detail) = faults
                .get(proto::GetFaultRequest {
                    id: refusal.fault_id,
                })
                .await
        {
            let detail = detail.into_inner();
            if stale {
                explained.changed_by = detail
                    .history
                    .iter()
                    .rev()
                    .find(|h| !matches!(h.action.as_str(), "REPEATED" | "NOTE" | "GROUPED"))
                    .cloned();
            }
            explained.current = detail.fault;
        }
        refused.push(explained);
    }
    Ok((reply.done, refused))
}
