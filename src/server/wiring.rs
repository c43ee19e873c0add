//! Lamps' wiring (which telecell drives a lamp, its basestation, circuit, zone and wattage):
//! served by the inventory as `Lamps.ListWiring`, and read by ingest and the fault engine
//! from this process's own tables when it serves the inventory, else from the inventory's
//! service: a reporter's telecells with the reporter's own token, every lamp (the engine at
//! a takeover) as the process's service account.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::context::Context;
use super::paging::{PageStream, next_page};
use crate::domain::telemetry::LampContext;
use crate::proto;
use crate::remote::account::ServiceAccount;
use crate::remote::inventory::{Inventory, OnBehalf};
use crate::wire::wiring::{MAX_TELECELL_UUID, lamp_wiring};

/// Pages buffered ahead of a slow reader.
const PAGES_IN_FLIGHT: usize = 4;

/// `Lamps.ListWiring`: the lamps the named telecells drive, or every lamp, in lamp-id order.
pub async fn list(
    context: &Context,
    telecell_uuids: Vec<String>,
) -> Result<PageStream<proto::LampWiringPage>, Status> {
    let wiring: Vec<proto::LampWiring> = if telecell_uuids.is_empty() {
        let lamps = context.blocking(|s| s.lamp_contexts()).await?;
        lamps.iter().map(|lamp| lamp_wiring(None, lamp)).collect()
    } else {
        let found = context
            .blocking(move |s| s.resolve_telecells(&telecell_uuids))
            .await?;
        let mut wiring: Vec<proto::LampWiring> = found
            .iter()
            .flat_map(|(uuid, lamps)| lamps.iter().map(|lamp| lamp_wiring(Some(uuid), lamp)))
            .collect();
        wiring.sort_unstable_by_key(|w| w.lamp_id);
        wiring
    };
    let bytes = context.page_bytes;
    let (sender, receiver) = mpsc::channel(PAGES_IN_FLIGHT);
    tokio::spawn(async move {
        let mut rest = wiring.into_iter().peekable();
        while rest.peek().is_some() {
            let lamps = next_page(&mut rest, usize::MAX, bytes, |w| w.encoded_len());
            if sender
                .send(Ok(proto::LampWiringPage { lamps }))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// Where this process reads lamps' wiring.
pub enum WiringSource {
    /// Its own tables: it serves the inventory.
    Store,
    /// The inventory's service, as each reporter and as `account` for the engine.
    Remote {
        inventory: Arc<Inventory>,
        account: Arc<ServiceAccount>,
    },
}

impl WiringSource {
    /// The lamps each of `uuids` drives (a telecell not in the estate is left out), asked for
    /// `reporter`.
    pub async fn resolve(
        &self,
        context: &Context,
        reporter: &OnBehalf,
        mut uuids: Vec<String>,
    ) -> Result<HashMap<String, Vec<LampContext>>, Status> {
        match self {
            Self::Store => Ok(context
                .blocking(move |s| s.resolve_telecells(&uuids))
                .await?),
            Self::Remote { inventory, .. } => {
                // What cannot be a stored uuid cannot name a telecell: not worth asking about.
                uuids.retain(|uuid| !uuid.trim().is_empty() && uuid.len() <= MAX_TELECELL_UUID);
                uuids.sort_unstable();
                uuids.dedup();
                if uuids.is_empty() {
                    return Ok(HashMap::new());
                }
                inventory.wiring_of(reporter, uuids).await
            }
        }
    }

    /// At start-up: signs the service account in, so that an account the auth service
    /// refuses (a wrong password, no such user) stops the process with the reason rather
    /// than failing every takeover. An auth service not reachable yet is no reason to stop.
    pub async fn check_account(&self) -> Result<(), String> {
        let Self::Remote { account, .. } = self else {
            return Ok(());
        };
        match account.on_behalf().await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::Unavailable => {
                tracing::warn!(error = %status.message(), "the service account cannot sign in yet");
                Ok(())
            }
            Err(status) => Err(format!(
                "--service-user: {}; check the user and SINGULARITY_SERVICE_PASSWORD",
                status.message()
            )),
        }
    }

    /// Every lamp's wiring, for the fault engine of a new term.
    pub async fn all(&self, context: &Context) -> Result<Vec<LampContext>, String> {
        match self {
            Self::Store => context
                .blocking(|s| s.lamp_contexts())
                .await
                .map_err(|e| e.to_string()),
            Self::Remote { inventory, account } => {
                let asked = async |account: &ServiceAccount| {
                    let caller = account.on_behalf().await?;
                    inventory.all_wiring(&caller).await
                };
                let answer = match asked(account).await {
                    // The account's session ended (expired, or signed out by an admin).
                    Err(status) if status.code() == Code::Unauthenticated => {
                        account.forget().await;
                        asked(account).await
                    }
                    answer => answer,
                };
                answer.map_err(|status| {
                    format!(
                        "cannot read the lamps' wiring from the inventory: {}",
                        status.message()
                    )
                })
            }
        }
    }
}
