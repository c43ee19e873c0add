//! The `Basestations` service: radio gateways.

use tonic::{Request, Response, Status};

use super::context::Context;
use super::paging::{self, PageStream, Pager};
use crate::proto::{self, basestations_server::Basestations};
use crate::wire;

pub struct BasestationService(pub Context);

const PAGER: Pager<
    crate::domain::inventory::Basestation,
    proto::Basestation,
    proto::BasestationPage,
> = Pager {
    fetch: |store, scan| store.basestations(scan),
    item: |record| proto::Basestation::from(record),
    page: |items, next_page_token| proto::BasestationPage {
        items,
        next_page_token,
    },
};

#[tonic::async_trait]
impl Basestations for BasestationService {
    type ListStream = PageStream<proto::BasestationPage>;
    type SearchByLocationStream = PageStream<proto::BasestationPage>;

    async fn get(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Basestation>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.lookup(|s| s.basestation(id))?;
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
        request: Request<proto::CreateBasestationRequest>,
    ) -> Result<Response<proto::Basestation>, Status> {
        let new = wire::new_basestation(request.get_ref())?;
        let record = self.0.blocking(move |s| s.create_basestation(new)).await?;
        Ok(Response::new(record.into()))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateBasestationRequest>,
    ) -> Result<Response<proto::Basestation>, Status> {
        let (id, version, patch) = wire::basestation_update(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.update_basestation(id, version, patch))
            .await?;
        Ok(Response::new(record.into()))
    }

    async fn delete(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Basestation>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.blocking(move |s| s.delete_basestation(id)).await?;
        Ok(Response::new(record.into()))
    }

    async fn prune(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::PruneResponse>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        self.0.blocking(move |s| s.prune_basestation(id)).await?;
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
