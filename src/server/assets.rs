//! The `Assets` service: lampposts (columns).

use tonic::{Request, Response, Status};

use super::context::Context;
use super::paging::{self, PageStream, Pager};
use crate::proto::{self, assets_server::Assets};
use crate::wire;

pub struct AssetService(pub Context);

const PAGER: Pager<crate::domain::inventory::Asset, proto::Asset, proto::AssetPage> = Pager {
    fetch: |store, scan| store.assets(scan),
    item: |record| proto::Asset::from(record),
    page: |items, next_page_token| proto::AssetPage {
        items,
        next_page_token,
    },
};

#[tonic::async_trait]
impl Assets for AssetService {
    type ListStream = PageStream<proto::AssetPage>;
    type SearchByLocationStream = PageStream<proto::AssetPage>;

    async fn get(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Asset>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.lookup(|s| s.asset(id))?;
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
        request: Request<proto::CreateAssetRequest>,
    ) -> Result<Response<proto::Asset>, Status> {
        let new = wire::new_asset(request.get_ref())?;
        let record = self.0.blocking(move |s| s.create_asset(new)).await?;
        Ok(Response::new(record.into()))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateAssetRequest>,
    ) -> Result<Response<proto::Asset>, Status> {
        let (id, version, patch) = wire::asset_update(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.update_asset(id, version, patch))
            .await?;
        Ok(Response::new(record.into()))
    }

    async fn delete(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Asset>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.blocking(move |s| s.delete_asset(id)).await?;
        Ok(Response::new(record.into()))
    }

    async fn prune(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::PruneResponse>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        self.0.blocking(move |s| s.prune_asset(id)).await?;
        Ok(Response::new(proto::PruneResponse { id }))
    }

    async fn search_by_location(
        &self,
        request: Request<proto::SearchByLocationRequest>,
    ) -> Result<Response<Self::SearchByLocationStream>, Status> {
        let search = wire::search_request(request.get_ref())?;
        Ok(Response::new(paging::stream(&self.0, search, PAGER)))
    }
}
