//! The `Catalog` service: zones, circuits and lamp types, the estate's reference data.

use tonic::{Request, Response, Status};

use super::context::Context;
use crate::proto::{self, catalog_server::Catalog};
use crate::wire;

pub struct CatalogService(pub Context);

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn list_zones(
        &self,
        _request: Request<proto::ListZonesRequest>,
    ) -> Result<Response<proto::ListZonesResponse>, Status> {
        let zones = self.0.blocking(|s| s.zones()).await?;
        Ok(Response::new(proto::ListZonesResponse {
            zones: zones.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_circuits(
        &self,
        request: Request<proto::ListCircuitsRequest>,
    ) -> Result<Response<proto::ListCircuitsResponse>, Status> {
        let (zone_id, after) = wire::requests::list_circuits(request.get_ref())?;
        let circuits = self.0.blocking(move |s| s.circuits(zone_id)).await?;
        let mut circuits: Vec<(i64, proto::Circuit)> =
            circuits.into_iter().map(|c| (c.id, c.into())).collect();
        circuits.sort_unstable_by_key(|(id, _)| *id);
        let (circuits, next_page_token) =
            super::paging::page_after(circuits, after, self.0.page_bytes);
        Ok(Response::new(proto::ListCircuitsResponse {
            circuits,
            next_page_token,
        }))
    }

    async fn list_lamp_types(
        &self,
        _request: Request<proto::ListLampTypesRequest>,
    ) -> Result<Response<proto::ListLampTypesResponse>, Status> {
        let lamp_types = self.0.blocking(|s| s.lamp_types()).await?;
        Ok(Response::new(proto::ListLampTypesResponse {
            lamp_types: lamp_types.into_iter().map(Into::into).collect(),
        }))
    }
}
