//! Several servers as one channel (`--server a,b,c`): calls are spread over the servers that
//! answer their health check, and one that stops answering (or says it is not serving, as a
//! draining server does) is left out until it answers again. A stream open on a server that
//! dies ends with an error; the caller's next attempt goes to one still serving.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How often each server is asked whether it serves.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A server that has not answered by then counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// A channel over every endpoint, each (URL, endpoint) probed until the channel is dropped.
pub fn balanced(endpoints: Vec<(String, Endpoint)>) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(endpoints.len().max(1) * 2);
    for (url, endpoint) in &endpoints {
        // Until the first probe says otherwise, every server counts as up.
        let _ = changes.try_send(Change::Insert(url.clone(), endpoint.clone()));
    }
    tokio::spawn(probe(endpoints, changes));
    channel
}

/// Which servers serve, once a second, until the channel is gone.
async fn probe(endpoints: Vec<(String, Endpoint)>, changes: Sender<Change<String, Endpoint>>) {
    let probes: Vec<HealthClient<Channel>> = endpoints
        .iter()
        .map(|(_, endpoint)| {
            HealthClient::new(endpoint.clone().timeout(PROBE_TIMEOUT).connect_lazy())
        })
        .collect();
    let mut present: BTreeSet<usize> = (0..endpoints.len()).collect();
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if changes.is_closed() {
            return;
        }
        let answers = futures::future::join_all(probes.iter().cloned().map(serving)).await;
        let mut wanted: BTreeSet<usize> = (0..endpoints.len()).filter(|i| answers[*i]).collect();
        // With none serving, keep them all: a call then fails at once instead of waiting
        // for a server that may never come.
        if wanted.is_empty() {
            wanted = (0..endpoints.len()).collect();
        }
        for gone in present.difference(&wanted) {
            tracing::info!(server = %endpoints[*gone].0, "server not serving; calls go to the others");
            if changes
                .send(Change::Remove(endpoints[*gone].0.clone()))
                .await
                .is_err()
            {
                return;
            }
        }
        for back in wanted.difference(&present) {
            tracing::info!(server = %endpoints[*back].0, "server serving again");
            let (url, endpoint) = &endpoints[*back];
            if changes
                .send(Change::Insert(url.clone(), endpoint.clone()))
                .await
                .is_err()
            {
                return;
            }
        }
        present = wanted;
    }
}

async fn serving(mut client: HealthClient<Channel>) -> bool {
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, check).await,
        Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32
    )
}
