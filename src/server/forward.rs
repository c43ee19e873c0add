//! Reports that reach a server which does not lead go on to the leader, on the caller's own
//! credentials: the field needs to know no more than one address of the estate, and nothing
//! is judged anywhere but on the leader. The leader's acknowledgement is passed back as it
//! came, so it still counts only what is durable.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use super::error::ServiceError;
use crate::proto::{self, telemetry_client::TelemetryClient};

/// Marks a forwarded call, so that two servers that each think the other leads do not pass
/// reports back and forth.
const FORWARDED: &str = "x-singularity-forwarded";

pub struct Forwarder {
    /// Trusted for the leader's certificate when servers talk TLS (else the system's roots).
    ca_pem: Option<Vec<u8>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarder {
    pub fn new(ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            ca_pem,
            channels: Mutex::default(),
        }
    }

    /// Whether this call was already forwarded once.
    pub fn was_forwarded<T>(request: &Request<T>) -> bool {
        request.metadata().contains_key(FORWARDED)
    }

    /// Sends the reports of `request` to the leader at `leader` and returns its answer.
    pub async fn report(
        &self,
        leader: &str,
        request: Request<Streaming<proto::TelecellReport>>,
    ) -> Result<Response<proto::ReportAck>, Status> {
        let channel = self.channel(leader)?;
        let authorization = request.metadata().get("authorization").cloned();
        // A broken incoming stream ends the forwarded one; what the leader stored of it is
        // acknowledged to nobody, and the sender's resend is recognised as duplicates.
        let reports = request
            .into_inner()
            .take_while(|report| std::future::ready(report.is_ok()))
            .filter_map(|report| std::future::ready(report.ok()));
        let mut forwarded = Request::new(reports);
        if let Some(authorization) = authorization {
            forwarded
                .metadata_mut()
                .insert("authorization", authorization);
        }
        forwarded
            .metadata_mut()
            .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        tracing::debug!(%leader, "forwarding reports to the leader");
        TelemetryClient::new(channel)
            .report(forwarded)
            .await
            .map_err(|status| match status.code() {
                // The leader's own refusals (a bad token, a stale term) reach the sender.
                tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled => {
                    ServiceError::unavailable(format!(
                        "the leading server at {leader} could not take the reports ({}); resend",
                        status.message()
                    ))
                    .into()
                }
                _ => status,
            })
    }

    fn channel(&self, leader: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(leader) {
            return Ok(channel.clone());
        }
        let endpoint = crate::link::endpoint(leader, self.ca_pem.as_deref()).map_err(|e| {
            Status::from(ServiceError::unavailable(format!(
                "cannot reach the leading server: {e}"
            )))
        })?;
        let channel = endpoint.connect_lazy();
        channels.insert(leader.to_owned(), channel.clone());
        Ok(channel)
    }
}
