//! The `Basestations` service: radio gateways.

use super::inventory::located_inventory_service;
use crate::proto::{self, basestations_server::Basestations};
use crate::wire;

located_inventory_service! {
    service: BasestationService,
    implements: Basestations,
    audit_as: ("Basestations", "basestation"),
    record: crate::domain::inventory::Basestation,
    message: proto::Basestation,
    page: BasestationPage,
    create_request: proto::CreateBasestationRequest,
    update_request: proto::UpdateBasestationRequest,
    decode_create: wire::new_basestation,
    decode_update: wire::basestation_update,
    get: basestation,
    scan: basestations,
    create: create_basestation,
    update: update_basestation,
    delete: delete_basestation,
    prune: prune_basestation,
    extra: {}
}
