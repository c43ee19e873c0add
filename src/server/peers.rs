//! The other parts of the API this process asks when it does not serve them: the auth
//! service for who a caller is (`--auth-url`), the inventory for billing's lamps and zones
//! (`--inventory-url`). Each is a set of instances whose health is asked every second.

use std::sync::Arc;
use std::time::Duration;

use super::context::Context;
use super::services::Part;
use super::{ServerConfig, ServerError, billing, gate};

/// Where the gate learns who a token belongs to: this process's own sessions table when it
/// serves auth, else the auth service at `auth_urls` (watched for health every second).
pub(super) fn session_source(
    context: &Context,
    config: &ServerConfig,
) -> Result<gate::SessionSource, ServerError> {
    config
        .services
        .check_auth_urls(&config.auth_urls)
        .map_err(ServerError::Peers)?;
    if config.services.serves(Part::Auth) {
        Ok(gate::SessionSource::Store(context.store.clone()))
    } else {
        let upstreams = peers(context, config, Part::Auth, &config.auth_urls)
            .map_err(|e| ServerError::Peers(format!("--auth-url: {e}")))?;
        Ok(gate::SessionSource::Auth(Arc::new(
            crate::remote::sessions::Sessions::new(upstreams, Duration::ZERO),
        )))
    }
}

/// How often a process asks each instance of another part it calls whether it serves.
const PEER_HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Where billing reads lamps and zones: this process's own tables when it serves the
/// inventory, else the inventory at `inventory_urls` (watched for health every second).
pub(super) fn billing_inventory(
    context: &Context,
    config: &ServerConfig,
) -> Result<billing::InventorySource, ServerError> {
    config
        .services
        .check_inventory_urls(&config.inventory_urls)
        .map_err(ServerError::Peers)?;
    if config.inventory_urls.is_empty() {
        return Ok(billing::InventorySource::Store);
    }
    let upstreams = peers(context, config, Part::Inventory, &config.inventory_urls)
        .map_err(|e| ServerError::Peers(format!("--inventory-url: {e}")))?;
    Ok(billing::InventorySource::Remote(Arc::new(
        crate::remote::inventory::Inventory::new(upstreams),
    )))
}

/// Channels to the instances of another part, their health asked every second until the
/// server stops.
fn peers(
    context: &Context,
    config: &ServerConfig,
    part: Part,
    urls: &[String],
) -> Result<Arc<crate::remote::upstreams::Upstreams>, crate::remote::RemoteError> {
    let upstreams = Arc::new(crate::remote::upstreams::Upstreams::new(
        &[(part, urls.to_vec())],
        config.cluster.peer_ca_pem.as_deref(),
    )?);
    tokio::spawn(upstreams.clone().watch(
        PEER_HEALTH_INTERVAL,
        None,
        context.metrics.clone(),
        context.shutdown.clone(),
    ));
    Ok(upstreams)
}
