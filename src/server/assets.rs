//! The `Assets` service: lampposts (columns).

use super::inventory::located_inventory_service;
use crate::proto::{self, assets_server::Assets};
use crate::wire;

located_inventory_service! {
    service: AssetService,
    implements: Assets,
    audit_as: ("Assets", "asset"),
    record: crate::domain::inventory::Asset,
    message: proto::Asset,
    page: AssetPage,
    create_request: proto::CreateAssetRequest,
    update_request: proto::UpdateAssetRequest,
    decode_create: wire::new_asset,
    decode_update: wire::asset_update,
    get: asset,
    scan: assets,
    create: create_asset,
    update: update_asset,
    delete: delete_asset,
    prune: prune_asset,
    extra: {}
}
