//! The `Lamps` service: luminaires, and mounting them on assets.

use tonic::{Request, Response, Status};

use super::context::Context;
use super::paging::{self, PageStream, Pager};
use crate::proto::{self, lamps_server::Lamps};
use crate::wire;

pub struct LampService(pub Context);

const PAGER: Pager<crate::domain::inventory::Lamp, proto::Lamp, proto::LampPage> = Pager {
    fetch: |store, scan| store.lamps(scan),
    item: |record| proto::Lamp::from(record),
    page: |items, next_page_token| proto::LampPage {
        items,
        next_page_token,
    },
};

#[tonic::async_trait]
impl Lamps for LampService {
    type ListStream = PageStream<proto::LampPage>;
    type SearchByLocationStream = PageStream<proto::LampPage>;
    type WatchStatusStream = PageStream<proto::LampStatus>;

    async fn get(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Lamp>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.lookup(|s| s.lamp(id))?;
        Ok(Response::new(record.into()))
    }

    async fn list(
        &self,
        request: Request<proto::ListOptions>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let list = wire::list_request(request.get_ref())?;
        Ok(Response::new(paging::stream(&self.0, list, PAGER)))
    }

    async fn create(
        &self,
        request: Request<proto::CreateLampRequest>,
    ) -> Result<Response<proto::Lamp>, Status> {
        let new = wire::new_lamp(request.get_ref())?;
        let record = self.0.blocking(move |s| s.create_lamp(new)).await?;
        Ok(Response::new(record.into()))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateLampRequest>,
    ) -> Result<Response<proto::Lamp>, Status> {
        let (id, version, patch) = wire::lamp_update(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.update_lamp(id, version, patch))
            .await?;
        Ok(Response::new(record.into()))
    }

    async fn delete(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Lamp>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.blocking(move |s| s.delete_lamp(id)).await?;
        Ok(Response::new(record.into()))
    }

    async fn prune(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::PruneResponse>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        self.0.blocking(move |s| s.prune_lamp(id)).await?;
        Ok(Response::new(proto::PruneResponse { id }))
    }

    async fn search_by_location(
        &self,
        request: Request<proto::SearchByLocationRequest>,
    ) -> Result<Response<Self::SearchByLocationStream>, Status> {
        let search = wire::search_request(request.get_ref())?;
        Ok(Response::new(paging::stream(&self.0, search, PAGER)))
    }

    async fn add_to_asset(
        &self,
        request: Request<proto::AddToAssetRequest>,
    ) -> Result<Response<proto::Lamp>, Status> {
        let lamp_id = wire::id("lamp_id", request.get_ref().lamp_id)?;
        let asset_id = wire::id("asset_id", request.get_ref().asset_id)?;
        let record = self
            .0
            .blocking(move |s| s.mount_lamp(lamp_id, asset_id))
            .await?;
        Ok(Response::new(record.into()))
    }

    async fn get_status(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::LampStatus>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        Ok(Response::new(super::status::status(&self.0, id).await?))
    }

    async fn watch_status(
        &self,
        request: Request<proto::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        Ok(Response::new(
            super::status::watch(&self.0, request.into_inner()).await?,
        ))
    }
}
