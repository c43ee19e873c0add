//! The `Telecells` service: radio nodes, and which lamps each drives.

use tonic::{Request, Response, Status};

use super::inventory::located_inventory_service;
use crate::proto::{self, telecells_server::Telecells};
use crate::wire;

located_inventory_service! {
    service: TelecellService,
    implements: Telecells,
    audit_as: ("Telecells", "telecell"),
    record: crate::domain::inventory::Telecell,
    message: proto::Telecell,
    page: TelecellPage,
    create_request: proto::CreateTelecellRequest,
    update_request: proto::UpdateTelecellRequest,
    decode_create: wire::new_telecell,
    decode_update: wire::telecell_update,
    get: telecell,
    scan: telecells,
    create: create_telecell,
    update: update_telecell,
    delete: delete_telecell,
    prune: prune_telecell,
    extra: {
        async fn add_to_lamps(
            &self,
            request: Request<proto::TelecellLampsRequest>,
        ) -> Result<Response<proto::TelecellLampsResponse>, Status> {
            let (telecell_id, lamp_ids) = wire::lamp_ids(request.get_ref())?;
            let before = self.0.lookup(move |s| s.telecell(telecell_id)).await.ok().map(proto::Telecell::from);
            let record = self.0.blocking(move |s| s.link_telecell_to_lamps(telecell_id, &lamp_ids)).await?;
            let after = proto::Telecell::from(record);
            self.audit(&request, "AddToLamps", telecell_id, before.as_ref(), Some(&after)).await;
            Ok(Response::new(proto::TelecellLampsResponse { telecell: Some(after) }))
        }

        async fn remove_from_lamps(
            &self,
            request: Request<proto::TelecellLampsRequest>,
        ) -> Result<Response<proto::TelecellLampsResponse>, Status> {
            let (telecell_id, lamp_ids) = wire::lamp_ids(request.get_ref())?;
            let before = self.0.lookup(move |s| s.telecell(telecell_id)).await.ok().map(proto::Telecell::from);
            let record = self.0.blocking(move |s| s.unlink_telecell_from_lamps(telecell_id, &lamp_ids)).await?;
            let after = proto::Telecell::from(record);
            self.audit(&request, "RemoveFromLamps", telecell_id, before.as_ref(), Some(&after)).await;
            Ok(Response::new(proto::TelecellLampsResponse { telecell: Some(after) }))
        }
    }
}
