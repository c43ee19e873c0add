//! The `Billing` service: totals over any range of settlement days grouped by zone, day, month
//! or lamp; live today and month-to-date totals after each settlement; one lamp's slots;
//! and tariffs.

use crate::domain::inventory::EntityKind;
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::audit::{self, Change};
use super::context::Context;
use super::error::ServiceError;
use super::paging::PageStream;
use super::settlement::BillingConfig;
use crate::domain::ValidationError;
use crate::domain::auth::Caller;
use crate::domain::billing::calendar::{AsOf, month_bounds};
use crate::domain::billing::settle;
use crate::proto::{self, billing_server::Billing};
use crate::remote::inventory::OnBehalf;
use crate::store::{TotalsGroup, TotalsQuery};
use crate::wire::billing as wire_billing;
use crate::wire::{self, timestamp};

/// Where billing reads the inventory's lamps and zones: this process's own tables when it
/// serves inventory, else the inventory service, asked with the caller's token.
pub enum InventorySource {
    Store,
    Remote(Arc<crate::remote::inventory::Inventory>),
}

impl InventorySource {
    /// Every zone's id and name.
    async fn zone_names(
        &self,
        context: &Context,
        caller: &OnBehalf,
    ) -> Result<Vec<(i64, String)>, Status> {
        match self {
            Self::Store => Ok(context.blocking(|s| s.zone_names()).await?),
            Self::Remote(inventory) => inventory.zone_names(caller).await,
        }
    }

    /// The zone a lamp stands in; `NOT_FOUND` when there is no such lamp.
    async fn lamp_zone(
        &self,
        context: &Context,
        caller: &OnBehalf,
        lamp_id: i64,
    ) -> Result<Option<i64>, Status> {
        match self {
            Self::Store => Ok(context.lookup(move |s| s.lamp(lamp_id)).await?.zone_id),
            Self::Remote(inventory) => inventory.lamp_zone(caller, lamp_id).await,
        }
    }

    /// The zones' names when the rows are zones (their labels), or a zone is asked for.
    async fn zones_for(
        &self,
        context: &Context,
        caller: &OnBehalf,
        group: TotalsGroup,
        zone_id: Option<i64>,
    ) -> Result<Vec<(i64, String)>, Status> {
        if group == TotalsGroup::Zone || zone_id.is_some() {
            self.zone_names(context, caller).await
        } else {
            Ok(Vec::new())
        }
    }
}

pub struct BillingService {
    pub context: Context,
    pub inventory: Arc<InventorySource>,
    pub config: BillingConfig,
    /// Counts settlements; watchers wake on each.
    pub settled: watch::Receiver<u64>,
}

/// The fastest a watcher is updated, whatever it asks for.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(500);

#[tonic::async_trait]
impl Billing for BillingService {
    type WatchTotalsStream = PageStream<proto::LiveTotals>;

    async fn get_totals(
        &self,
        request: Request<proto::GetTotalsRequest>,
    ) -> Result<Response<proto::Totals>, Status> {
        let asked = wire::requests::get_totals(request.get_ref())?;
        self.begun("to", asked.to)?;
        let zone = self.config.calendar().zone();
        if asked.time_zone.is_some_and(|asked| asked != zone) {
            return Err(ValidationError::new(
                "time_zone",
                format!("energy is settled in {zone} days; ask in {zone} or leave time_zone empty"),
            )
            .into());
        }
        let caller = OnBehalf::of(&request);
        let zones = self
            .inventory
            .zones_for(&self.context, &caller, asked.group, asked.zone_id)
            .await?;
        let query = TotalsQuery {
            from: asked.from,
            to: asked.to,
            group: asked.group,
            zone_id: zone_exists(&zones, asked.zone_id)?,
            limit: asked.limit,
        };
        Ok(Response::new(
            totals(&self.context, self.as_of(), query, &zones).await?,
        ))
    }

    async fn watch_totals(
        &self,
        request: Request<proto::WatchTotalsRequest>,
    ) -> Result<Response<Self::WatchTotalsStream>, Status> {
        let asked = wire::requests::watch_totals(request.get_ref())?;
        let (group, limit) = (asked.group, asked.limit);
        let caller = OnBehalf::of(&request);
        let mut zones = self
            .inventory
            .zones_for(&self.context, &caller, group, asked.zone_id)
            .await?;
        let zone_id = zone_exists(&zones, asked.zone_id)?;
        let interval = asked.min_interval.max(MIN_WATCH_INTERVAL);
        let (sender, receiver) = mpsc::channel(2);
        let (context, config, mut settled) =
            (self.context.clone(), self.config, self.settled.clone());
        let inventory = self.inventory.clone();
        tokio::spawn(async move {
            loop {
                let seq = *settled.borrow_and_update();
                let as_of = AsOf {
                    calendar: config.calendar(),
                    now: Utc::now(),
                    grace: config.meter.max_gap,
                };
                let today = as_of.calendar.date_of(as_of.now);
                let (month_start, _) = month_bounds(today);
                let query = |from: NaiveDate| TotalsQuery {
                    from,
                    to: today,
                    group,
                    zone_id,
                    limit,
                };
                // Asked again at each update, as a zone may be renamed meanwhile; the names
                // last read serve while the inventory cannot answer.
                match inventory.zones_for(&context, &caller, group, zone_id).await {
                    Ok(fresh) => zones = fresh,
                    Err(status) => {
                        tracing::warn!(error = %status.message(), "zone names not refreshed");
                    }
                }
                let update = async {
                    Ok::<_, Status>(proto::LiveTotals {
                        today: Some(totals(&context, as_of, query(today), &zones).await?),
                        month_to_date: Some(
                            totals(&context, as_of, query(month_start), &zones).await?,
                        ),
                        settlement: seq,
                    })
                }
                .await;
                let failed = update.is_err();
                if sender.send(update).await.is_err() || failed {
                    return;
                }
                tokio::time::sleep(interval).await;
                tokio::select! {
                    () = context.shutdown.cancelled() => {
                        let _ = sender.send(Err(ServiceError::unavailable("the server is shutting down; watch again to resume").into())).await;
                        return;
                    }
                    changed = settled.changed() => if changed.is_err() { return },
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_lamp_energy(
        &self,
        request: Request<proto::GetLampEnergyRequest>,
    ) -> Result<Response<proto::LampEnergy>, Status> {
        let (lamp_id, date) = wire::requests::get_lamp_energy(request.get_ref())?;
        self.begun("date", date)?;
        let lamp_zone = self
            .inventory
            .lamp_zone(&self.context, &OnBehalf::of(&request), lamp_id)
            .await?;
        let (stored, book) = self
            .context
            .blocking(move |s| Ok((s.lamp_energy(lamp_id, date)?, s.tariffs()?)))
            .await?;
        let calendar = self.config.calendar();
        let as_of = self.as_of();
        let due = as_of.expected(date, date) as usize;
        let (zone_id, slots) = match stored {
            Some((zone, slots)) => (zone, slots),
            None => (
                lamp_zone.unwrap_or(0),
                vec![settle::SlotEnergy::default(); calendar.slots_in(date)],
            ),
        };
        let prices: Vec<_> = (0..slots.len())
            .map(|i| book.slot_price(calendar.slot_start(date, i)))
            .collect();
        let totals = settle::settle(&slots, &prices);
        let slot_rows = slots
            .iter()
            .zip(&prices)
            .enumerate()
            .map(|(index, (slot, price))| proto::EnergySlot {
                index: index as u32,
                start: Some(timestamp(calendar.slot_start(date, index))),
                energy_wh: slot.wh(),
                covered_seconds: u32::from(slot.covered_s),
                missing: index < due && !slot.is_complete(),
                cost_millipence: settle::settle(
                    std::slice::from_ref(slot),
                    std::slice::from_ref(price),
                )
                .cost_mp,
                baseline_wh: i64::from(slot.baseline_wh),
            })
            .collect();
        let missing = slots.iter().take(due).filter(|s| !s.is_complete()).count() as i64;
        let row = crate::store::TotalsRow {
            key: lamp_id.to_string(),
            totals,
            lamps: 1,
            lamps_missing: u32::from(missing > 0),
            missing_slots: missing,
        };
        Ok(Response::new(proto::LampEnergy {
            lamp_id,
            date: date.to_string(),
            zone_id,
            slots: slot_rows,
            total: Some(wire_billing::totals_row(
                &row,
                lamp_id.to_string(),
                zone_id,
                lamp_id,
            )),
        }))
    }

    async fn list_tariffs(
        &self,
        request: Request<proto::ListTariffsRequest>,
    ) -> Result<Response<proto::ListTariffsResponse>, Status> {
        let after = wire::requests::list_tariffs(request.get_ref())?;
        let book = self.context.blocking(|s| s.tariffs()).await?;
        let mut tariffs: Vec<(i64, proto::Tariff)> = book
            .tariffs
            .iter()
            .map(|t| (t.id, wire_billing::tariff(t)))
            .collect();
        tariffs.sort_unstable_by_key(|(id, _)| *id);
        let (tariffs, next_page_token) =
            super::paging::page_after(tariffs, after, self.context.page_bytes);
        Ok(Response::new(proto::ListTariffsResponse {
            tariffs,
            next_page_token,
        }))
    }

    async fn set_tariff(
        &self,
        request: Request<proto::SetTariffRequest>,
    ) -> Result<Response<proto::Tariff>, Status> {
        let (id, terms) = wire_billing::set_tariff(request.get_ref())?;
        let calendar = self.config.calendar();
        let before = match id {
            Some(id) => self
                .context
                .blocking(|s| s.tariffs())
                .await?
                .tariffs
                .iter()
                .find(|t| t.id == id)
                .map(wire_billing::tariff),
            None => None,
        };
        let tariff = self
            .context
            .blocking(move |s| s.set_tariff(calendar, id, terms))
            .await?;
        let after = wire_billing::tariff(&tariff);
        audit::record(
            &self.context,
            request.extensions().get::<Caller>(),
            Change {
                action: "Billing.SetTariff".to_owned(),
                entity: "tariff",
                entity_id: after.id,
                before: before.as_ref(),
                after: Some(&after),
                also: None,
            },
        )
        .await;
        Ok(Response::new(after))
    }
}

impl BillingService {
    fn as_of(&self) -> AsOf {
        AsOf {
            calendar: self.config.calendar(),
            now: Utc::now(),
            grace: self.config.meter.max_gap,
        }
    }

    fn today(&self) -> NaiveDate {
        self.config.calendar().date_of(Utc::now())
    }

    /// Refuses a day that has not begun in the settlement zone: nothing is settled there yet.
    fn begun(&self, field: &str, date: NaiveDate) -> Result<(), ValidationError> {
        let today = self.today();
        if date > today {
            return Err(ValidationError::new(
                field,
                format!(
                    "{date} has not begun in {} (today is {today})",
                    self.config.calendar().zone()
                ),
            ));
        }
        Ok(())
    }
}

/// A zone to filter by, which must be one of `zones` (`None`: every zone).
fn zone_exists(zones: &[(i64, String)], zone_id: Option<i64>) -> Result<Option<i64>, Status> {
    let Some(id) = zone_id else {
        return Ok(None);
    };
    if zones.iter().any(|(zone, _)| *zone == id) {
        Ok(Some(id))
    } else {
        Err(StoreError::MissingReference {
            field: "zone_id",
            kind: EntityKind::Zone,
            id,
        }
        .into())
    }
}

/// Totals for a query, with the grand total, labels and savings.
/// How often a reply's rows and total are read before they are taken as they are.
const CONSISTENT_READ_ATTEMPTS: usize = 3;

/// Whether rows that share out a period add up to its total (energy and money).
fn rows_add_up(rows: &[crate::store::TotalsRow], total: &[crate::store::TotalsRow]) -> bool {
    let whole = total.first().map(|t| (t.totals.wh, t.totals.cost_mp));
    let summed = rows.iter().fold((0, 0), |(wh, mp), r| {
        (wh + r.totals.wh, mp + r.totals.cost_mp)
    });
    whole.unwrap_or((0, 0)) == summed
}

async fn totals(
    context: &Context,
    as_of: AsOf,
    query: TotalsQuery,
    zones: &[(i64, String)],
) -> Result<proto::Totals, ServiceError> {
    let (rows, total) = context
        .blocking(move |s| {
            // The rows and the total are two reads: a settlement committing between them
            // would give rows that do not add up to the total. Where the rows share out the
            // whole (every grouping but the top lamps), read again until they agree.
            let mut attempt = 0;
            let (rows, total) = loop {
                let rows = s.energy_totals(&query, as_of)?;
                let all = TotalsQuery {
                    group: TotalsGroup::All,
                    ..query
                };
                let total = s.energy_totals(&all, as_of)?;
                attempt += 1;
                if query.group == TotalsGroup::Lamp
                    || attempt >= CONSISTENT_READ_ATTEMPTS
                    || rows_add_up(&rows, &total)
                {
                    break (rows, total);
                }
            };
            Ok((rows, total))
        })
        .await?;
    let names: HashMap<i64, &str> = zones
        .iter()
        .map(|(id, name)| (*id, name.as_str()))
        .collect();
    let total = total.into_iter().next().unwrap_or_default();
    let listed = rows.len() as u32;
    let rows = rows
        .iter()
        .map(|row| {
            let id: i64 = row.key.parse().unwrap_or(0);
            match query.group {
                TotalsGroup::Zone => {
                    let label = names
                        .get(&id)
                        .map_or_else(|| "(no zone)".to_owned(), |name| (*name).to_owned());
                    wire_billing::totals_row(row, label, id, 0)
                }
                TotalsGroup::Lamp => wire_billing::totals_row(row, row.key.clone(), 0, id),
                _ => wire_billing::totals_row(row, row.key.clone(), 0, 0),
            }
        })
        .collect();
    Ok(proto::Totals {
        from: query.from.to_string(),
        to: query.to.to_string(),
        time_zone: as_of.calendar.zone().name().to_owned(),
        group_by: wire_billing::group(query.group) as i32,
        rows,
        total: Some(wire_billing::totals_row(&total, "total".into(), 0, 0)),
        expected_slots: as_of.expected(query.from, query.to),
        as_of: Some(timestamp(as_of.now)),
        rows_omitted: if query.group == TotalsGroup::Lamp {
            total.lamps.saturating_sub(listed)
        } else {
            0
        },
    })
}
