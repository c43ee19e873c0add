//! The other parts of the API this process asks when it does not serve them: the auth
//! service for who a caller is (`--auth-url`), the inventory for billing's lamps and zones
//! and for telemetry's wiring (`--inventory-url`), telemetry and faults for a lamp's status
//! (`--telemetry-url`, `--faults-url`), and the account telemetry signs in as
//! (`--service-user`). Each part is a set of instances whose health is asked every second.

use std::sync::Arc;
use std::time::Duration;

use super::context::Context;
use super::services::Part;
use super::wiring::WiringSource;
use super::{ServerConfig, ServerError, billing, gate};
use crate::remote::account::{ServiceAccount, SignIn};
use crate::remote::inventory::Inventory;
use crate::remote::observed::StatusSources;
use crate::remote::upstreams::Upstreams;

/// How often a process asks each instance of another part it calls whether it serves.
const PEER_HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// What this process asks of the other parts, and how.
pub(super) struct Peers {
    /// Where the gate learns who a token belongs to.
    pub sessions: gate::SessionSource,
    /// Where billing reads lamps and zones.
    pub billing_inventory: billing::InventorySource,
    /// Where ingest and the fault engine read lamps' wiring.
    pub wiring: Arc<WiringSource>,
    /// Where a lamp's status reads its latest reading and open faults.
    pub lamp_status: StatusSources,
}

/// Checks the peer settings against the services served and sets up the channels (their
/// health watched until the server stops).
pub(super) fn set_up(context: &Context, config: &ServerConfig) -> Result<Peers, ServerError> {
    let services = config.services;
    let account = config.service_account.as_ref();
    services
        .check_auth_urls(&config.auth_urls)
        .and_then(|()| services.check_inventory_urls(&config.inventory_urls))
        .and_then(|()| {
            services.check_status_urls(Part::Telemetry, "--telemetry-url", &config.telemetry_urls)
        })
        .and_then(|()| {
            services.check_status_urls(Part::Faults, "--faults-url", &config.faults_urls)
        })
        .and_then(|()| {
            services.check_service_account(
                account.map(|a| a.username.as_str()),
                account.is_some_and(|a| a.password.is_some()),
            )
        })
        .map_err(ServerError::Peers)?;
    let auth = if services.serves(Part::Auth) {
        None
    } else {
        Some(
            peers(context, config, Part::Auth, &config.auth_urls)
                .map_err(|e| ServerError::Peers(format!("--auth-url: {e}")))?,
        )
    };
    let inventory = if config.inventory_urls.is_empty() {
        None
    } else {
        let upstreams = peers(context, config, Part::Inventory, &config.inventory_urls)
            .map_err(|e| ServerError::Peers(format!("--inventory-url: {e}")))?;
        Some(Arc::new(Inventory::new(upstreams)))
    };
    let sessions = match &auth {
        None => gate::SessionSource::Store(context.store.clone()),
        Some(upstreams) => gate::SessionSource::Auth(Arc::new(
            crate::remote::sessions::Sessions::new(upstreams.clone(), Duration::ZERO),
        )),
    };
    let billing_inventory = match (&inventory, services.serves(Part::Billing)) {
        (Some(inventory), true) => billing::InventorySource::Remote(inventory.clone()),
        _ => billing::InventorySource::Store,
    };
    let wiring = match (&inventory, account) {
        (Some(inventory), Some(account)) => {
            let sign_in = match (&auth, &account.password) {
                (Some(upstreams), Some(password)) => SignIn::Auth {
                    upstreams: upstreams.clone(),
                    password: password.clone(),
                },
                _ => SignIn::Local(context.store.clone()),
            };
            WiringSource::Remote {
                inventory: inventory.clone(),
                account: Arc::new(ServiceAccount::new(account.username.clone(), sign_in)),
            }
        }
        _ => WiringSource::Store,
    };
    let observed = |part: Part, flag: &str, urls: &[String]| {
        if urls.is_empty() {
            return Ok(None);
        }
        peers(context, config, part, urls)
            .map(Some)
            .map_err(|e| ServerError::Peers(format!("{flag}: {e}")))
    };
    let lamp_status = StatusSources {
        telemetry: observed(Part::Telemetry, "--telemetry-url", &config.telemetry_urls)?
            .map(crate::remote::observed::Telemetry),
        faults: observed(Part::Faults, "--faults-url", &config.faults_urls)?
            .map(crate::remote::observed::Faults),
    };
    Ok(Peers {
        sessions,
        billing_inventory,
        wiring: Arc::new(wiring),
        lamp_status,
    })
}

/// Channels to the instances of another part, their health asked every second until the
/// server stops.
fn peers(
    context: &Context,
    config: &ServerConfig,
    part: Part,
    urls: &[String],
) -> Result<Arc<Upstreams>, crate::remote::RemoteError> {
    let upstreams = Arc::new(Upstreams::new(
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
