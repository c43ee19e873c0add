//! What the inventory, run apart from telemetry and faults, asks them for a lamp's status:
//! the latest stored reports (`Telemetry.GetLatest`, `WatchLatest`) and the open faults
//! (`Faults.List`, `Faults.Watch`), with the caller's own token and request id, of one
//! instance after another while they are unavailable.

use std::sync::Arc;

use tonic::{Status, Streaming};

use super::inventory::OnBehalf;
use super::upstreams::Upstreams;
use crate::proto::{self, faults_client::FaultsClient, telemetry_client::TelemetryClient};
use crate::server::services::Part;

/// Faults listed per page when reading a lamp's open faults.
const FAULTS_PAGE: i32 = 1_000;

/// The fault states that count towards a lamp's status.
pub const OPEN_STATES: [proto::FaultState; 3] = [
    proto::FaultState::Open,
    proto::FaultState::Acknowledged,
    proto::FaultState::Assigned,
];

/// Where a lamp's latest reading and open faults are read.
pub struct StatusSources {
    /// `None`: this process's tables (it serves telemetry).
    pub telemetry: Option<Telemetry>,
    /// `None`: this process's tables (it serves faults).
    pub faults: Option<Faults>,
}

impl StatusSources {
    /// Both from this process's own tables.
    pub fn local() -> Self {
        Self {
            telemetry: None,
            faults: None,
        }
    }
}

/// Instances of telemetry.
pub struct Telemetry(pub Arc<Upstreams>);

impl Telemetry {
    /// The latest report of each of `lamps` ever heard from.
    pub async fn latest(
        &self,
        caller: &OnBehalf,
        lamps: Vec<i64>,
    ) -> Result<Vec<proto::TelecellReport>, Status> {
        let request = proto::LatestRequest { lamp_ids: lamps };
        let reply = self
            .0
            .ask(Part::Telemetry, |channel| {
                let request = caller.request(request.clone());
                async move { TelemetryClient::new(channel).get_latest(request).await }
            })
            .await?;
        Ok(reply.reports)
    }

    /// The latest reports of `lamps`, then each newer one.
    pub async fn watch(
        &self,
        caller: &OnBehalf,
        lamps: Vec<i64>,
    ) -> Result<Streaming<proto::LatestReports>, Status> {
        let request = proto::LatestRequest { lamp_ids: lamps };
        self.0
            .ask(Part::Telemetry, |channel| {
                let request = caller.request(request.clone());
                async move { TelemetryClient::new(channel).watch_latest(request).await }
            })
            .await
    }
}

/// Instances of faults.
pub struct Faults(pub Arc<Upstreams>);

impl Faults {
    /// The lamp's faults that are open, acknowledged or assigned.
    pub async fn open_faults(
        &self,
        caller: &OnBehalf,
        lamp_id: i64,
    ) -> Result<Vec<proto::Fault>, Status> {
        let filter = proto::FaultFilter {
            lamp_id,
            states: OPEN_STATES.iter().map(|s| *s as i32).collect(),
            ..Default::default()
        };
        let (faults, _) = self.list(caller, filter, FAULTS_PAGE).await?;
        Ok(faults)
    }

    /// Every fault event from now on, of `zone_id` and of `lamp_id` when not 0: a listing's
    /// position, then a watch from it.
    pub async fn watch(
        &self,
        caller: &OnBehalf,
        zone_id: i64,
        lamp_id: i64,
    ) -> Result<Streaming<proto::FaultEvent>, Status> {
        let (_, after_seq) = self.list(caller, proto::FaultFilter::default(), 1).await?;
        let request = proto::WatchFaultsRequest {
            after_seq,
            filter: Some(proto::FaultFilter {
                zone_id,
                lamp_id,
                ..Default::default()
            }),
        };
        self.0
            .ask(Part::Faults, |channel| {
                let request = caller.request(request.clone());
                async move { FaultsClient::new(channel).watch(request).await }
            })
            .await
    }

    /// Every page of a listing: the faults and the event-log position it is consistent with.
    async fn list(
        &self,
        caller: &OnBehalf,
        filter: proto::FaultFilter,
        page_size: i32,
    ) -> Result<(Vec<proto::Fault>, u64), Status> {
        let request = proto::ListFaultsRequest {
            filter: Some(filter),
            page_size: Some(page_size),
            page_token: String::new(),
        };
        let only_first = page_size == 1;
        self.0
            .ask(Part::Faults, |channel| {
                let request = caller.request(request.clone());
                async move {
                    let mut pages = FaultsClient::new(channel).list(request).await?.into_inner();
                    let (mut faults, mut seq) = (Vec::new(), 0);
                    while let Some(page) = pages.message().await? {
                        seq = seq.max(page.snapshot_seq);
                        faults.extend(page.items);
                        if only_first {
                            break;
                        }
                    }
                    Ok(tonic::Response::new((faults, seq)))
                }
            })
            .await
    }
}
