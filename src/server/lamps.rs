//! The `Lamps` service: luminaires, mounting them on assets, their live status, and their
//! wiring for the parts that run apart from the inventory.

use tonic::{Request, Response, Status};

use super::inventory::located_inventory_service;
use super::paging::PageStream;
use crate::proto::{self, lamps_server::Lamps};
use crate::wire;

located_inventory_service! {
    service: LampService,
    implements: Lamps,
    audit_as: ("Lamps", "lamp"),
    record: crate::domain::inventory::Lamp,
    message: proto::Lamp,
    page: LampPage,
    create_request: proto::CreateLampRequest,
    update_request: proto::UpdateLampRequest,
    decode_create: wire::new_lamp,
    decode_update: wire::lamp_update,
    get: lamp,
    scan: lamps,
    create: create_lamp,
    update: update_lamp,
    delete: delete_lamp,
    prune: prune_lamp,
    extra: {
        type WatchStatusStream = PageStream<proto::LampStatus>;
        type ListWiringStream = PageStream<proto::LampWiringPage>;

        async fn add_to_asset(&self, request: Request<proto::AddToAssetRequest>) -> Result<Response<proto::Lamp>, Status> {
            let (lamp_id, asset_id) = wire::requests::add_to_asset(request.get_ref())?;
            let before = self.0.lookup(move |s| s.lamp(lamp_id)).await.ok().map(proto::Lamp::from);
            let record = self.0.blocking(move |s| s.mount_lamp(lamp_id, asset_id)).await?;
            let after = proto::Lamp::from(record);
            self.audit(&request, "AddToAsset", lamp_id, before.as_ref(), Some(&after)).await;
            Ok(Response::new(after))
        }

        async fn get_status(&self, request: Request<proto::IdRequest>) -> Result<Response<proto::LampStatus>, Status> {
            let id = wire::requests::id_request(request.get_ref())?;
            let caller = crate::remote::inventory::OnBehalf::of(&request);
            Ok(Response::new(super::status::status(&self.0, &caller, id).await?))
        }

        async fn watch_status(
            &self,
            request: Request<proto::WatchStatusRequest>,
        ) -> Result<Response<Self::WatchStatusStream>, Status> {
            let watched = wire::requests::watch_status(request.get_ref())?;
            let caller = crate::remote::inventory::OnBehalf::of(&request);
            Ok(Response::new(super::status::watch(&self.0, caller, watched).await?))
        }

        async fn list_wiring(
            &self,
            request: Request<proto::ListWiringRequest>,
        ) -> Result<Response<Self::ListWiringStream>, Status> {
            let telecells = wire::wiring::list_wiring(request.get_ref())?;
            Ok(Response::new(super::wiring::list(&self.0, telecells).await?))
        }
    }
}
