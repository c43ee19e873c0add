//! What the other parts ask of the inventory when they run apart from it: billing a lamp's
//! zone and the zones' names (`Lamps.Get`, `Catalog.ListZones`), telemetry the lamps'
//! wiring (`Lamps.ListWiring`). Asked with the caller's own token and request id (or the
//! process's service account's) of one instance after another while they are unavailable.
//! The inventory's own refusals (a lamp not found, a session ended) come back as they are.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};

use super::upstreams::Upstreams;
use crate::domain::telemetry::LampContext;
use crate::proto::{self, catalog_client::CatalogClient, lamps_client::LampsClient};
use crate::server::services::Part;

/// Who a question is asked for: the caller's `authorization` and request id, passed on.
#[derive(Debug, Clone, Default)]
pub struct OnBehalf {
    authorization: Option<MetadataValue<Ascii>>,
    request_id: Option<MetadataValue<Ascii>>,
}

impl OnBehalf {
    /// The caller of an incoming request.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let metadata = request.metadata();
        Self {
            authorization: metadata.get("authorization").cloned(),
            request_id: metadata.get(crate::server::observe::REQUEST_ID).cloned(),
        }
    }

    /// A caller holding `token` (a service account's session), with no request id.
    pub fn bearer(token: &str) -> Self {
        Self::token(token, None)
    }

    /// A caller holding `token`, asking under `request_id`.
    pub fn token(token: &str, request_id: Option<&str>) -> Self {
        Self {
            authorization: format!("Bearer {token}").parse().ok(),
            request_id: request_id.and_then(|id| id.parse().ok()),
        }
    }

    /// `message` as a request carrying the caller's token and request id.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(value) = &self.authorization {
            metadata.insert("authorization", value.clone());
        }
        if let Some(value) = &self.request_id {
            metadata.insert(crate::server::observe::REQUEST_ID, value.clone());
        }
        request
    }
}

pub struct Inventory {
    upstreams: Arc<Upstreams>,
}

impl Inventory {
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }

    /// The zone a lamp stands in (`None`: no zone); `NOT_FOUND` when there is no such lamp.
    pub async fn lamp_zone(&self, caller: &OnBehalf, lamp_id: i64) -> Result<Option<i64>, Status> {
        let lamp = self
            .ask(|channel| async move {
                LampsClient::new(channel)
                    .get(caller.request(proto::IdRequest { id: lamp_id }))
                    .await
            })
            .await?;
        Ok(Some(lamp.zone_id).filter(|zone| *zone != 0))
    }

    /// Every zone's id and name.
    pub async fn zone_names(&self, caller: &OnBehalf) -> Result<Vec<(i64, String)>, Status> {
        let reply = self
            .ask(|channel| async move {
                CatalogClient::new(channel)
                    .list_zones(caller.request(proto::ListZonesRequest {}))
                    .await
            })
            .await?;
        Ok(reply.zones.into_iter().map(|z| (z.id, z.name)).collect())
    }

    /// The lamps each telecell of `uuids` drives (at most `MAX_WIRING_TELECELLS`); one not in
    /// the estate is left out.
    pub async fn wiring_of(
        &self,
        caller: &OnBehalf,
        uuids: Vec<String>,
    ) -> Result<HashMap<String, Vec<LampContext>>, Status> {
        let mut by_telecell: HashMap<String, Vec<LampContext>> = HashMap::new();
        for wiring in self.list_wiring(caller, uuids).await? {
            let lamp = crate::wire::wiring::lamp_context(&wiring).map_err(unreadable)?;
            by_telecell
                .entry(wiring.telecell_uuid)
                .or_default()
                .push(lamp);
        }
        Ok(by_telecell)
    }

    /// Every lamp a telecell drives, in lamp-id order.
    pub async fn all_wiring(&self, caller: &OnBehalf) -> Result<Vec<LampContext>, Status> {
        self.list_wiring(caller, Vec::new())
            .await?
            .iter()
            .map(|wiring| crate::wire::wiring::lamp_context(wiring).map_err(unreadable))
            .collect()
    }

    async fn list_wiring(
        &self,
        caller: &OnBehalf,
        telecell_uuids: Vec<String>,
    ) -> Result<Vec<proto::LampWiring>, Status> {
        let request = proto::ListWiringRequest { telecell_uuids };
        self.ask(|channel| {
            let request = caller.request(request.clone());
            async move {
                let mut pages = LampsClient::new(channel)
                    .list_wiring(request)
                    .await?
                    .into_inner();
                let mut lamps = Vec::new();
                while let Some(page) = pages.message().await? {
                    lamps.extend(page.lamps);
                }
                Ok(tonic::Response::new(lamps))
            }
        })
        .await
    }

    async fn ask<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: Fn(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.upstreams.ask(Part::Inventory, call).await
    }
}

/// An answer of the inventory's that does not read as the contract says.
fn unreadable(error: crate::domain::ValidationError) -> Status {
    Status::internal(format!("the inventory's answer does not read: {error}"))
}
