//! The `Telecells` service: radio nodes, and which lamps each drives.

use tonic::{Request, Response, Status};

use super::context::Context;
use super::paging::{self, PageStream, Pager};
use crate::proto::{self, telecells_server::Telecells};
use crate::wire;

pub struct TelecellService(pub Context);

const PAGER: Pager<crate::domain::inventory::Telecell, proto::Telecell, proto::TelecellPage> =
    Pager {
        fetch: |store, scan| store.telecells(scan),
        item: |record| proto::Telecell::from(record),
        page: |items, next_page_token| proto::TelecellPage {
            items,
            next_page_token,
        },
    };

#[tonic::async_trait]
impl Telecells for TelecellService {
    type ListStream = PageStream<proto::TelecellPage>;
    type SearchByLocationStream = PageStream<proto::TelecellPage>;

    async fn get(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Telecell>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.lookup(|s| s.telecell(id))?;
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
        request: Request<proto::CreateTelecellRequest>,
    ) -> Result<Response<proto::Telecell>, Status> {
        let new = wire::new_telecell(request.get_ref())?;
        let record = self.0.blocking(move |s| s.create_telecell(new)).await?;
        Ok(Response::new(record.into()))
    }

    async fn update(
        &self,
        request: Request<proto::UpdateTelecellRequest>,
    ) -> Result<Response<proto::Telecell>, Status> {
        let (id, version, patch) = wire::telecell_update(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.update_telecell(id, version, patch))
            .await?;
        Ok(Response::new(record.into()))
    }

    async fn delete(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::Telecell>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        let record = self.0.blocking(move |s| s.delete_telecell(id)).await?;
        Ok(Response::new(record.into()))
    }

    async fn prune(
        &self,
        request: Request<proto::IdRequest>,
    ) -> Result<Response<proto::PruneResponse>, Status> {
        let id = wire::id("id", request.get_ref().id)?;
        self.0.blocking(move |s| s.prune_telecell(id)).await?;
        Ok(Response::new(proto::PruneResponse { id }))
    }

    async fn search_by_location(
        &self,
        request: Request<proto::SearchByLocationRequest>,
    ) -> Result<Response<Self::SearchByLocationStream>, Status> {
        let search = wire::search_request(request.get_ref())?;
        Ok(Response::new(paging::stream(&self.0, search, PAGER)))
    }

    async fn add_to_lamps(
        &self,
        request: Request<proto::TelecellLampsRequest>,
    ) -> Result<Response<proto::TelecellLampsResponse>, Status> {
        let (telecell_id, lamp_ids) = wire::lamp_ids(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.link_telecell_to_lamps(telecell_id, &lamp_ids))
            .await?;
        Ok(Response::new(proto::TelecellLampsResponse {
            telecell: Some(record.into()),
        }))
    }

    async fn remove_from_lamps(
        &self,
        request: Request<proto::TelecellLampsRequest>,
    ) -> Result<Response<proto::TelecellLampsResponse>, Status> {
        let (telecell_id, lamp_ids) = wire::lamp_ids(request.get_ref())?;
        let record = self
            .0
            .blocking(move |s| s.unlink_telecell_from_lamps(telecell_id, &lamp_ids))
            .await?;
        Ok(Response::new(proto::TelecellLampsResponse {
            telecell: Some(record.into()),
        }))
    }
}
