//! The instances behind each part of the API: a channel to each, whether it serves (asked
//! over `grpc.health.v1` every interval), and which to use next.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};

use super::RemoteError;
use crate::server::metrics::Metrics;
use crate::server::services::Part;

/// One instance of a part of the API.
pub struct Upstream {
    pub url: String,
    pub channel: Channel,
    healthy: AtomicBool,
}

impl Upstream {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Why no instance of a part answered a call.
#[derive(Debug)]
pub enum Unanswered {
    /// An instance answered with a refusal other than UNAVAILABLE.
    Refused(tonic::Status),
    /// None could answer; the last failure, with the instance's URL.
    Unreachable(String),
}

pub struct Upstreams {
    parts: HashMap<Part, Vec<Arc<Upstream>>>,
    next: AtomicUsize,
}

impl Upstreams {
    /// Channels to every instance (connected on first use).
    pub fn new(routes: &[(Part, Vec<String>)], ca_pem: Option<&[u8]>) -> Result<Self, RemoteError> {
        let mut parts: HashMap<Part, Vec<Arc<Upstream>>> = HashMap::new();
        for (part, urls) in routes {
            for url in urls {
                let endpoint =
                    crate::link::endpoint(url, ca_pem).map_err(|reason| RemoteError::Route {
                        part: part.name(),
                        url: url.clone(),
                        reason,
                    })?;
                parts.entry(*part).or_default().push(Arc::new(Upstream {
                    url: url.clone(),
                    channel: endpoint.connect_lazy(),
                    // Trusted until the first health check says otherwise.
                    healthy: AtomicBool::new(true),
                }));
            }
        }
        Ok(Self {
            parts,
            next: AtomicUsize::new(0),
        })
    }

    pub fn routes(&self, part: Part) -> bool {
        self.parts.contains_key(&part)
    }

    /// The next instance of `part` not among `tried`, round robin: a healthy one while any
    /// is left, else one the last health check missed. Health is a hint a second old: an
    /// instance that just died still looks healthy, and one too busy to answer its check in
    /// time may serve the call.
    pub fn pick(&self, part: Part, tried: &[usize]) -> Option<(usize, Arc<Upstream>)> {
        let instances = self.parts.get(&part)?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let untried = || {
            (0..instances.len())
                .map(move |offset| (start + offset) % instances.len())
                .filter(|i| !tried.contains(i))
        };
        untried()
            .find(|i| instances[*i].healthy())
            .or_else(|| untried().next())
            .map(|i| (i, instances[i].clone()))
    }

    /// Makes `call` of one instance of `part` after another until one answers with anything
    /// but UNAVAILABLE (which comes back as it is); UNAVAILABLE naming the last failure when
    /// none can answer.
    pub async fn ask<T, F, Fut>(&self, part: Part, call: F) -> Result<T, tonic::Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.try_each(part, call).await.map_err(|e| match e {
            Unanswered::Refused(status) => status,
            Unanswered::Unreachable(last) => tonic::Status::unavailable(format!(
                "cannot ask the {} just now ({last}); retry shortly",
                part.name()
            )),
        })
    }

    /// `ask`, leaving the words of a failure to the caller.
    pub async fn try_each<T, F, Fut>(&self, part: Part, call: F) -> Result<T, Unanswered>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut tried = Vec::new();
        let mut last = format!("no {} instance is given", part.name());
        while let Some((index, instance)) = self.pick(part, &tried) {
            tried.push(index);
            match call(instance.channel.clone()).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    last = format!("{}: {}", instance.url, status.message());
                }
                Err(status) => return Err(Unanswered::Refused(status)),
            }
        }
        Err(Unanswered::Unreachable(last))
    }

    /// Asks every instance whether it serves its part, every `interval`, until `stop`; keeps
    /// the metrics and, for a gateway, its own health in step.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        health: Option<tonic_health::server::HealthReporter>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) {
        loop {
            let checks = self.parts.iter().flat_map(|(part, instances)| {
                instances.iter().map(move |instance| async move {
                    let serving = serves(instance, *part, interval).await;
                    instance.healthy.store(serving, Ordering::Relaxed);
                    (*part, instance.url.clone(), serving)
                })
            });
            let results = futures::future::join_all(checks).await;
            for (part, url, serving) in &results {
                metrics.upstream(part.name(), url, *serving);
            }
            if let Some(health) = &health {
                report(self.as_ref(), &results, health).await;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Keeps a gateway's own health in step: each service serves when an instance of its part
/// does; "" when every routed part has one.
async fn report(
    upstreams: &Upstreams,
    results: &[(Part, String, bool)],
    health: &tonic_health::server::HealthReporter,
) {
    let mut every_part = true;
    for part in Part::ALL {
        if !upstreams.routes(part) {
            continue;
        }
        let up = results.iter().any(|(p, _, serving)| *p == part && *serving);
        every_part &= up;
        let status = if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in part.grpc_services() {
            health.set_service_status(*name, status).await;
        }
    }
    let whole = if every_part {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", whole).await;
}

/// Whether `instance` says it serves `part` within `limit`.
async fn serves(instance: &Upstream, part: Part, limit: Duration) -> bool {
    let service = part.grpc_services()[0].to_owned();
    let mut client = HealthClient::new(instance.channel.clone());
    let check = client.check(HealthCheckRequest { service });
    matches!(
        tokio::time::timeout(limit, check).await,
        Ok(Ok(reply)) if reply.get_ref().status == health_check_response::ServingStatus::Serving as i32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_healthy_instance_is_asked_first_then_any_other_not_yet_tried() {
        let urls = vec![
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        ];
        let upstreams = Upstreams::new(&[(Part::Auth, urls)], None).unwrap();
        upstreams.parts[&Part::Auth][0]
            .healthy
            .store(false, Ordering::Relaxed);
        for _ in 0..4 {
            assert_eq!(upstreams.pick(Part::Auth, &[]).unwrap().0, 1);
        }
        assert_eq!(upstreams.pick(Part::Auth, &[1]).unwrap().0, 0);
        assert!(upstreams.pick(Part::Auth, &[0, 1]).is_none());
        assert!(upstreams.pick(Part::Inventory, &[]).is_none());
    }
}
