//! Which server does the work that must happen once: judging reports (the fault engine),
//! the offline sweep, settlement, closing days and retention. The leader is chosen through
//! the database (`Backend::campaign`); every server campaigns once a second, and the one that
//! wins builds the engine from the database and starts that work for its term. A server
//! that loses the role (or its database) stops it at once; its late writes are refused by
//! the term. Settlement and closing days go with the term only when the leader serves
//! billing and also holds settlement's role (`Backend::campaign_settlement`); otherwise a
//! billing process apart from telemetry settles (`settler.rs`). On SQLite the one server
//! always leads and settles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::engine::{self, Engine};
use super::services::Part;
use super::wiring::WiringSource;
use super::{ServerConfig, ServerError, settlement};
use crate::store::Leader;

/// How often each server campaigns (and the leader renews its heartbeat).
const CAMPAIGN_EVERY: Duration = Duration::from_secs(1);
/// However short the time nobody led, the field gets this long to report to a new leader
/// before silence counts as offline (reports queued in the field arrive in bursts).
const MIN_TAKEOVER_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// This server's part: leading (with the engine of its term) or following someone.
#[derive(Clone, Default)]
pub enum Role {
    /// Not yet known (before the first campaign) or the database cannot be reached.
    #[default]
    Unknown,
    Leading {
        term: i64,
        engine: Engine,
    },
    /// Another server leads; `leader` is where to reach it, if recorded.
    Following {
        leader: Option<Leader>,
    },
}

/// The role, shared by the services.
pub struct Leadership {
    role: watch::Sender<Role>,
    /// Where the others reach this server (forwarded reports, the leader's record).
    pub address: String,
    /// The leader's tasks of the current term, for the last settlement at shutdown.
    term_tasks: Mutex<Option<TermTasks>>,
    /// The task campaigning every second, so a stop waits for it before giving up the role.
    campaigner: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where a new term's engine reads every lamp's wiring.
    wiring: Arc<WiringSource>,
    /// Whether the current term settles energy (it holds settlement's role too).
    settles: AtomicBool,
}

struct TermTasks {
    stop: CancellationToken,
    /// The settlement task, when this term settles energy.
    settling: Option<tokio::task::JoinHandle<()>>,
}

impl Leadership {
    pub fn new(address: String, wiring: Arc<WiringSource>) -> Arc<Self> {
        Arc::new(Self {
            role: watch::channel(Role::Unknown).0,
            address,
            term_tasks: Mutex::default(),
            campaigner: Mutex::default(),
            wiring,
            settles: AtomicBool::new(false),
        })
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Whether this server still leads in `term`.
    pub fn leads_in(&self, term: i64) -> bool {
        matches!(*self.role.borrow(), Role::Leading { term: now, .. } if now == term)
    }

    /// Campaigns once: takes the role (building the engine and starting the leader's work),
    /// keeps it, or follows. A failure to reach the database ends this server's term.
    pub async fn campaign(
        self: &Arc<Self>,
        context: &Context,
        config: &ServerConfig,
        settled: &Arc<watch::Sender<u64>>,
    ) -> Result<(), ServerError> {
        let address = self.address.clone();
        let outcome = context
            .blocking(move |s| {
                let leading = s.campaign(&address)?;
                let recorded = match leading {
                    Some(_) => None,
                    None => s.leader()?,
                };
                Ok((leading, recorded))
            })
            .await;
        let (leading, recorded) = match outcome {
            Ok(found) => found,
            Err(e) => {
                if matches!(self.role(), Role::Leading { .. }) {
                    tracing::error!(error = %e, "cannot reach the database: no longer leading");
                }
                self.end_term(context, Role::Unknown).await;
                return Err(ServerError::Leadership(e.to_string()));
            }
        };
        match (leading, self.role()) {
            (Some(won), Role::Leading { term, .. }) if won.term == term => {
                self.keep_settlement(context).await
            }
            (Some(won), _) => self.take_office(context, config, settled, won).await,
            (None, _) => {
                if matches!(self.role(), Role::Leading { .. }) {
                    tracing::warn!("another server leads now: leader's work stopped here");
                }
                self.end_term(context, Role::Following { leader: recorded })
                    .await;
                Ok(())
            }
        }
    }

    /// Builds the engine from the database and starts the leader's work for `won`'s term.
    async fn take_office(
        self: &Arc<Self>,
        context: &Context,
        config: &ServerConfig,
        settled: &Arc<watch::Sender<u64>>,
        won: Leader,
    ) -> Result<(), ServerError> {
        self.step_down(Role::Unknown);
        let began = std::time::Instant::now();
        let grace = match won.unheard_for {
            None => config.startup_grace,
            Some(silent) => silent.max(MIN_TAKEOVER_GRACE).min(config.startup_grace),
        };
        let sweep_from = chrono::Utc::now() + grace;
        let (thresholds, policy, billing) = (
            config.thresholds.clone(),
            config.policy.clone(),
            config.billing,
        );
        // Still this server's role in the database when the wiring cannot be read: the next
        // campaign tries again.
        let wiring = self
            .wiring
            .all(context)
            .await
            .map_err(ServerError::Engine)?;
        let settles = self.take_settlement(context, config).await?;
        let built = context
            .blocking(move |store| {
                let mut state =
                    engine::load(store, wiring, thresholds, policy, sweep_from, billing.meter)?;
                state.metering = settles;
                let unsettled = if settles {
                    settlement::unsettled_lamps(store, &state)?
                } else {
                    Vec::new()
                };
                Ok((state, unsettled))
            })
            .await;
        let (state, unsettled) = match built {
            Ok(built) => built,
            // Still this server's role in the database: the next campaign tries again.
            Err(e) => return Err(ServerError::Engine(e.to_string())),
        };
        let engine: Engine = Arc::new(tokio::sync::Mutex::new(state));
        let stop = context.shutdown.child_token();
        let term_context = Context {
            shutdown: stop.clone(),
            ..context.clone()
        };
        let settling = settles.then(|| {
            tokio::spawn(settlement::run(
                term_context.clone(),
                engine.clone(),
                config.billing,
                unsettled,
                settled.clone(),
            ))
        });
        tokio::spawn(super::housekeeping::run(
            term_context,
            engine.clone(),
            config.clone(),
            settles,
        ));
        *self
            .term_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(TermTasks { stop, settling });
        tracing::info!(
            term = won.term,
            took_ms = began.elapsed().as_millis(),
            previous_leader_silent_ms = won.unheard_for.map(|d| d.num_milliseconds()),
            settlement_here = settles,
            "leading: the fault engine runs here"
        );
        self.role.send_replace(Role::Leading {
            term: won.term,
            engine,
        });
        Ok(())
    }

    /// Whether this term settles energy: when this process serves billing and takes
    /// settlement's role (held by a process serving billing apart from telemetry, when there
    /// is one, and then this term leaves settlement to it).
    async fn take_settlement(
        &self,
        context: &Context,
        config: &ServerConfig,
    ) -> Result<bool, ServerError> {
        if !config.services.serves(Part::Billing) {
            self.settles.store(false, Ordering::Release);
            return Ok(false);
        }
        let address = self.address.clone();
        let held = context
            .blocking(move |s| s.campaign_settlement(&address))
            .await
            .map_err(|e| ServerError::Leadership(e.to_string()))?;
        if held.is_none() {
            tracing::info!(
                "another process settles energy (billing apart from telemetry): this term meters nothing"
            );
        }
        let settles = held.is_some();
        self.settles.store(settles, Ordering::Release);
        Ok(settles)
    }

    /// Renews settlement's role with the leader's, when this term settles; a term that can
    /// no longer say it settles ends (the next campaign starts another).
    async fn keep_settlement(&self, context: &Context) -> Result<(), ServerError> {
        if !self.settles.load(Ordering::Acquire) {
            return Ok(());
        }
        let address = self.address.clone();
        let kept = context
            .blocking(move |s| s.campaign_settlement(&address))
            .await;
        let lost = match kept {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => "settlement's role was taken by another process".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %lost, "cannot renew settlement's role: ending this term");
        self.end_term(context, Role::Unknown).await;
        let _ = context
            .blocking(|s| {
                s.resign();
                Ok(())
            })
            .await;
        Err(ServerError::Leadership(lost))
    }

    /// Ends this server's term and lets settlement's role go if the term held it, so that
    /// whoever leads or settles next can take it.
    async fn end_term(&self, context: &Context, next: Role) {
        self.step_down(next);
        if self.settles.swap(false, Ordering::AcqRel) {
            let _ = context
                .blocking(|s| {
                    s.resign_settlement();
                    Ok(())
                })
                .await;
        }
    }

    /// Ends this server's term, if it has one, and takes up `next`.
    fn step_down(&self, next: Role) {
        if let Some(tasks) = self
            .term_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            tasks.stop.cancel();
        }
        self.role.send_replace(next);
    }

    /// Campaigns every second until shutdown, in a task of its own.
    pub fn start(
        self: &Arc<Self>,
        context: Context,
        config: ServerConfig,
        settled: Arc<watch::Sender<u64>>,
    ) {
        let task = tokio::spawn(self.clone().run(context, config, settled));
        *self
            .campaigner
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    async fn run(
        self: Arc<Self>,
        context: Context,
        config: ServerConfig,
        settled: Arc<watch::Sender<u64>>,
    ) {
        let mut ticks = tokio::time::interval(CAMPAIGN_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = context.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.campaign(&context, &config, &settled).await {
                tracing::warn!(error = %e, "campaign for the leader's role failed");
            }
        }
    }

    /// At shutdown: waits for the leader's last settlement (the server stopped taking
    /// reports, so a clean stop leaves nothing to meter again), then gives the role up so
    /// another server takes over at once.
    pub async fn finish(&self, context: &Context) {
        // A campaign under way when the stop began could take the role again after it is
        // given up; the campaigner ends at its next turn.
        let campaigner = self
            .campaigner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(campaigner) = campaigner {
            let _ = campaigner.await;
        }
        let tasks = self
            .term_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tasks) = tasks {
            tasks.stop.cancel();
            if let Some(settling) = tasks.settling
                && let Err(e) = settling.await
            {
                tracing::error!(error = %e, "the settlement task failed");
            }
        }
        self.role.send_replace(Role::Unknown);
        let _ = context
            .blocking(|s| {
                s.resign_settlement();
                s.resign();
                Ok(())
            })
            .await;
    }
}
