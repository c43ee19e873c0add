//! The `Catalog` service: zones, circuits and lamp types, the estate's reference data.

use tonic::{Request, Response, Status};

use super::context::Context;
use super::error::ServiceError;
use crate::domain::validation::optional_id;
use crate::proto::{self, catalog_server::Catalog};

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
        let zone_id =
            optional_id("zone_id", request.get_ref().zone_id).map_err(ServiceError::from)?;
        let circuits = self.0.blocking(move |s| s.circuits(zone_id)).await?;
        Ok(Response::new(proto::ListCircuitsResponse {
            circuits: circuits.into_iter().map(Into::into).collect(),
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
