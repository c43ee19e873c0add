//! What this server does with the other servers' notices (`store::Notice`): reads the fault
//! log for the events they appended, passes lamp changes and settlements to its watchers,
//! ends sessions they ended (and the streams on them), and counts their failed sign-ins.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, broadcast, watch};

use super::context::Context;
use super::limiter::LoginLimiter;
use crate::store::Notice;

/// Acts on the other servers' notices until shutdown; nothing to do on a database nobody
/// shares.
pub async fn follow(
    context: Context,
    limiter: Arc<LoginLimiter>,
    settled: Arc<watch::Sender<u64>>,
) {
    let store = context.store.clone();
    let subscribed = tokio::task::spawn_blocking(move || store.notices()).await;
    let Ok(Some(mut notices)) = subscribed else {
        return;
    };
    // Many commits' notices are answered by one read of the log.
    let log_grew = Arc::new(Notify::new());
    tokio::spawn(catch_up(context.clone(), log_grew.clone()));
    loop {
        let notice = tokio::select! {
            () = context.shutdown.cancelled() => return,
            notice = notices.recv() => notice,
        };
        match notice {
            Ok(Notice::FaultLog) => log_grew.notify_one(),
            Ok(Notice::Readings(lamps)) => {
                for lamp in lamps {
                    // Nobody watching is fine.
                    let _ = context.lamp_updates.send(lamp);
                }
            }
            Ok(Notice::Settled) => settled.send_modify(|n| *n += 1),
            Ok(Notice::SessionEnded(token_hash)) => context.sessions.forget(&token_hash),
            Ok(Notice::UserChanged(user)) => context.sessions.forget_user(user),
            Ok(Notice::SignInFailed { username, peer }) => {
                limiter.count_failure(&username, peer, Instant::now());
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "fell behind the other servers' notices");
                log_grew.notify_one();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn catch_up(context: Context, log_grew: Arc<Notify>) {
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => return,
            () = log_grew.notified() => {}
        }
        let feed = context.fault_feed.clone();
        if let Err(e) = context.blocking(move |s| feed.catch_up(s)).await {
            tracing::warn!(error = %e, "cannot read the fault log after another server's notice");
        }
    }
}
