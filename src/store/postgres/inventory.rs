//! The estate in PostgreSQL (`InventoryStore`): reads pipelined on the shared connections,
//! changes on the writer, each checked (references, versions, dependents) inside its
//! savepoint, with the row locked first so servers sharing the database serialise on it.

use super::Conn as Client;
use chrono::Utc;

use super::rows::{Stored, fetch, get, lamp_type, millis, scan};
use super::{PgStore, db_error, is_unique_violation};
use crate::domain::estate::Estate;
use crate::domain::inventory::{
    Asset, AssetPatch, Basestation, BasestationPatch, Circuit, EntityKind, EntityStatus, Lamp,
    LampPatch, LampType, NewAsset, NewBasestation, NewLamp, NewTelecell, Telecell, TelecellPatch,
    Zone,
};
use crate::store::check_version;
use crate::store::{EstateCounts, InventoryStore, Scan, StoreError, StoreResult};

impl InventoryStore for PgStore {
    fn basestation(&self, id: i64) -> StoreResult<Basestation> {
        self.read(move |c| async move { fetch(&c, id).await })
    }

    fn basestations(&self, query: &Scan) -> StoreResult<Vec<Basestation>> {
        let query = *query;
        self.read(move |c| async move { scan(&c, &query).await })
    }

    fn create_basestation(&self, new: NewBasestation) -> StoreResult<Basestation> {
        self.write(move |c| async move {
            let uuid = new.uuid.to_string();
            let row = c
                .query_one(
                    "INSERT INTO basestations (uuid, name, firmware_version, lat, lon, status, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING id",
                    &[&uuid, &new.name, &new.firmware_version, &new.location.lat(), &new.location.lon(), &new.status.as_str(), &millis(Utc::now())],
                )
                .await
                .map_err(|e| unique(e, EntityKind::Basestation, "uuid", &uuid))?;
            fetch(&c, get(&row, 0)?).await
        })
    }

    fn update_basestation(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: BasestationPatch,
    ) -> StoreResult<Basestation> {
        self.write(move |c| async move {
            let mut record: Basestation = locked(&c, id).await?;
            check_version(&record, expected_version)?;
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE basestations SET name = $2, firmware_version = $3, lat = $4, lon = $5, status = $6, \
                 version = version + 1, updated_at = $7 WHERE id = $1",
                &[&id, &record.name, &record.firmware_version, &record.location.lat(), &record.location.lon(), &record.status.as_str(), &millis(Utc::now())],
            )
            .await
            .map_err(db_error)?;
            fetch(&c, id).await
        })
    }

    fn delete_basestation(&self, id: i64) -> StoreResult<Basestation> {
        self.write(move |c| async move { soft_delete(&c, id).await })
    }

    fn prune_basestation(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| async move {
            prune::<Basestation>(
                &c,
                id,
                &[(
                    "SELECT count(*) FROM telecells WHERE basestation_id = $1",
                    "telecells report through it",
                )],
            )
            .await
        })
    }

    fn telecell(&self, id: i64) -> StoreResult<Telecell> {
        self.read(move |c| async move { fetch(&c, id).await })
    }

    fn telecells(&self, query: &Scan) -> StoreResult<Vec<Telecell>> {
        let query = *query;
        self.read(move |c| async move { scan(&c, &query).await })
    }

    fn create_telecell(&self, new: NewTelecell) -> StoreResult<Telecell> {
        self.write(move |c| async move {
            require_live(&c, "basestation_id", EntityKind::Basestation, new.basestation_id).await?;
            if let Some(via) = new.relay_via_id {
                require_live(&c, "relay_via_id", EntityKind::Telecell, via).await?;
            }
            let uuid = new.uuid.to_string();
            let row = c
                .query_one(
                    "INSERT INTO telecells (uuid, basestation_id, relay_via_id, lat, lon, firmware_version, status, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) RETURNING id",
                    &[&uuid, &new.basestation_id, &new.relay_via_id, &new.location.lat(), &new.location.lon(), &new.firmware_version, &new.status.as_str(), &millis(Utc::now())],
                )
                .await
                .map_err(|e| unique(e, EntityKind::Telecell, "uuid", &uuid))?;
            fetch(&c, get(&row, 0)?).await
        })
    }

    fn update_telecell(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: TelecellPatch,
    ) -> StoreResult<Telecell> {
        self.write(move |c| async move {
            let mut record: Telecell = locked(&c, id).await?;
            check_version(&record, expected_version)?;
            if let Some(basestation_id) = patch.basestation_id {
                require_live(&c, "basestation_id", EntityKind::Basestation, basestation_id).await?;
            }
            if let Some(Some(via)) = patch.relay_via_id {
                if via == id {
                    return Err(StoreError::Conflict(format!(
                        "relay_via_id: telecell {id} cannot relay through itself"
                    )));
                }
                require_live(&c, "relay_via_id", EntityKind::Telecell, via).await?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE telecells SET basestation_id = $2, relay_via_id = $3, lat = $4, lon = $5, firmware_version = $6, \
                 status = $7, version = version + 1, updated_at = $8 WHERE id = $1",
                &[&id, &record.basestation_id, &record.relay_via_id, &record.location.lat(), &record.location.lon(), &record.firmware_version, &record.status.as_str(), &millis(Utc::now())],
            )
            .await
            .map_err(db_error)?;
            fetch(&c, id).await
        })
    }

    fn delete_telecell(&self, id: i64) -> StoreResult<Telecell> {
        self.write(move |c| async move { soft_delete(&c, id).await })
    }

    fn prune_telecell(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| async move {
            prune::<Telecell>(
                &c,
                id,
                &[
                    (
                        "SELECT count(*) FROM lamps WHERE telecell_id = $1",
                        "lamps are driven by it",
                    ),
                    (
                        "SELECT count(*) FROM telecells WHERE relay_via_id = $1",
                        "telecells relay through it",
                    ),
                ],
            )
            .await
        })
    }

    fn link_telecell_to_lamps(&self, telecell_id: i64, lamp_ids: &[i64]) -> StoreResult<Telecell> {
        let lamp_ids = lamp_ids.to_vec();
        self.write(move |c| async move {
            require_live(&c, "telecell_id", EntityKind::Telecell, telecell_id).await?;
            for &lamp_id in &lamp_ids {
                match lamp_driver(&c, lamp_id).await? {
                    Some(other) if other != telecell_id => {
                        return Err(StoreError::Conflict(format!(
                            "lamp_ids: lamp {lamp_id} is driven by telecell {other}; remove it from that telecell first"
                        )));
                    }
                    _ => set_lamp_driver(&c, lamp_id, Some(telecell_id)).await?,
                }
            }
            fetch(&c, telecell_id).await
        })
    }

    fn unlink_telecell_from_lamps(
        &self,
        telecell_id: i64,
        lamp_ids: &[i64],
    ) -> StoreResult<Telecell> {
        let lamp_ids = lamp_ids.to_vec();
        self.write(move |c| async move {
            require_exists(&c, "telecell_id", EntityKind::Telecell, telecell_id).await?;
            for &lamp_id in &lamp_ids {
                if lamp_driver(&c, lamp_id).await? != Some(telecell_id) {
                    return Err(StoreError::Conflict(format!(
                        "lamp_ids: lamp {lamp_id} is not driven by telecell {telecell_id}"
                    )));
                }
                set_lamp_driver(&c, lamp_id, None).await?;
            }
            fetch(&c, telecell_id).await
        })
    }

    fn asset(&self, id: i64) -> StoreResult<Asset> {
        self.read(move |c| async move { fetch(&c, id).await })
    }

    fn assets(&self, query: &Scan) -> StoreResult<Vec<Asset>> {
        let query = *query;
        self.read(move |c| async move { scan(&c, &query).await })
    }

    fn create_asset(&self, new: NewAsset) -> StoreResult<Asset> {
        self.write(move |c| async move {
            require_exists(&c, "zone_id", EntityKind::Zone, new.zone_id).await?;
            if let Some(circuit_id) = new.circuit_id {
                require_exists(&c, "circuit_id", EntityKind::Circuit, circuit_id).await?;
            }
            let row = c
                .query_one(
                    "INSERT INTO assets (reference, lat, lon, zone_id, circuit_id, status, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING id",
                    &[&new.reference, &new.location.lat(), &new.location.lon(), &new.zone_id, &new.circuit_id, &new.status.as_str(), &millis(Utc::now())],
                )
                .await
                .map_err(|e| unique(e, EntityKind::Asset, "reference", &new.reference))?;
            fetch(&c, get(&row, 0)?).await
        })
    }

    fn update_asset(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: AssetPatch,
    ) -> StoreResult<Asset> {
        self.write(move |c| async move {
            let mut record: Asset = locked(&c, id).await?;
            check_version(&record, expected_version)?;
            if let Some(zone_id) = patch.zone_id {
                require_exists(&c, "zone_id", EntityKind::Zone, zone_id).await?;
            }
            if let Some(Some(circuit_id)) = patch.circuit_id {
                require_exists(&c, "circuit_id", EntityKind::Circuit, circuit_id).await?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE assets SET reference = $2, lat = $3, lon = $4, zone_id = $5, circuit_id = $6, status = $7, \
                 version = version + 1, updated_at = $8 WHERE id = $1",
                &[&id, &record.reference, &record.location.lat(), &record.location.lon(), &record.zone_id, &record.circuit_id, &record.status.as_str(), &millis(Utc::now())],
            )
            .await
            .map_err(|e| unique(e, EntityKind::Asset, "reference", &record.reference))?;
            fetch(&c, id).await
        })
    }

    fn delete_asset(&self, id: i64) -> StoreResult<Asset> {
        self.write(move |c| async move { soft_delete(&c, id).await })
    }

    fn prune_asset(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| async move {
            prune::<Asset>(
                &c,
                id,
                &[(
                    "SELECT count(*) FROM lamps WHERE asset_id = $1",
                    "lamps are mounted on it",
                )],
            )
            .await
        })
    }

    fn lamp(&self, id: i64) -> StoreResult<Lamp> {
        self.read(move |c| async move { fetch(&c, id).await })
    }

    fn lamps(&self, query: &Scan) -> StoreResult<Vec<Lamp>> {
        let query = *query;
        self.read(move |c| async move { scan(&c, &query).await })
    }

    fn create_lamp(&self, new: NewLamp) -> StoreResult<Lamp> {
        self.write(move |c| async move {
            require_exists(&c, "lamp_type_id", EntityKind::LampType, new.lamp_type_id).await?;
            if let Some(asset_id) = new.asset_id {
                require_live(&c, "asset_id", EntityKind::Asset, asset_id).await?;
            }
            if let Some(telecell_id) = new.telecell_id {
                require_live(&c, "telecell_id", EntityKind::Telecell, telecell_id).await?;
            }
            let row = c
                .query_one(
                    "INSERT INTO lamps (reference, asset_id, lamp_type_id, telecell_id, status, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id",
                    &[&new.reference, &new.asset_id, &new.lamp_type_id, &new.telecell_id, &new.status.as_str(), &millis(Utc::now())],
                )
                .await
                .map_err(|e| unique(e, EntityKind::Lamp, "reference", &new.reference))?;
            fetch(&c, get(&row, 0)?).await
        })
    }

    fn update_lamp(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: LampPatch,
    ) -> StoreResult<Lamp> {
        self.write(move |c| async move {
            let mut record: Lamp = locked(&c, id).await?;
            check_version(&record, expected_version)?;
            if let Some(lamp_type_id) = patch.lamp_type_id {
                require_exists(&c, "lamp_type_id", EntityKind::LampType, lamp_type_id).await?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE lamps SET reference = $2, lamp_type_id = $3, status = $4, version = version + 1, updated_at = $5 \
                 WHERE id = $1",
                &[&id, &record.reference, &record.lamp_type.id, &record.status.as_str(), &millis(Utc::now())],
            )
            .await
            .map_err(|e| unique(e, EntityKind::Lamp, "reference", &record.reference))?;
            fetch(&c, id).await
        })
    }

    fn delete_lamp(&self, id: i64) -> StoreResult<Lamp> {
        self.write(move |c| async move { soft_delete(&c, id).await })
    }

    fn prune_lamp(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| async move {
            prune::<Lamp>(&c, id, &[]).await?;
            // Its raw history goes with it; its faults stay, as the record of what happened.
            for sql in [
                "DELETE FROM readings WHERE lamp_id = $1",
                "DELETE FROM latest_readings WHERE lamp_id = $1",
            ] {
                c.execute(sql, &[&id]).await.map_err(db_error)?;
            }
            Ok(())
        })
    }

    fn mount_lamp(&self, lamp_id: i64, asset_id: i64) -> StoreResult<Lamp> {
        self.write(move |c| async move {
            require_exists(&c, "lamp_id", EntityKind::Lamp, lamp_id).await?;
            require_live(&c, "asset_id", EntityKind::Asset, asset_id).await?;
            c.execute(
                "UPDATE lamps SET asset_id = $2, version = version + 1, updated_at = $3 WHERE id = $1",
                &[&lamp_id, &asset_id, &millis(Utc::now())],
            )
            .await
            .map_err(db_error)?;
            fetch(&c, lamp_id).await
        })
    }

    fn zones(&self) -> StoreResult<Vec<Zone>> {
        self.read(|c| async move {
            let rows = c
                .query(
                    "SELECT z.id, z.name, (SELECT count(*) FROM assets a WHERE a.zone_id = z.id AND a.status <> 'deleted') \
                     FROM zones z ORDER BY z.name",
                    &[],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(Zone {
                        id: get(row, 0)?,
                        name: get(row, 1)?,
                        asset_count: get(row, 2)?,
                    })
                })
                .collect()
        })
    }

    fn zone_names(&self) -> StoreResult<Vec<(i64, String)>> {
        self.read(|c| async move {
            let rows = c
                .query("SELECT id, name FROM zones", &[])
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
                .collect()
        })
    }

    fn circuits(&self, zone_id: Option<i64>) -> StoreResult<Vec<Circuit>> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT k.id, k.name, k.zone_id, (SELECT count(*) FROM assets a WHERE a.circuit_id = k.id AND a.status <> 'deleted') \
                     FROM circuits k WHERE $1::bigint IS NULL OR k.zone_id = $1 ORDER BY k.name",
                    &[&zone_id],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(Circuit {
                        id: get(row, 0)?,
                        name: get(row, 1)?,
                        zone_id: get(row, 2)?,
                        asset_count: get(row, 3)?,
                    })
                })
                .collect()
        })
    }

    fn lamp_types(&self) -> StoreResult<Vec<LampType>> {
        self.read(|c| async move {
            let rows = c
                .query(
                    "SELECT id, name, technology, wattage_w, control_type FROM lamp_types ORDER BY id",
                    &[],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(|row| lamp_type(row, 0)).collect()
        })
    }

    fn counts(&self) -> StoreResult<EstateCounts> {
        self.read(|c| async move { counts(&c).await })
    }

    fn import_estate(&self, estate: &Estate) -> StoreResult<EstateCounts> {
        let estate = estate.clone();
        self.write(move |c| async move {
            let existing = counts(&c).await?;
            if existing.lamps > 0 || existing.assets > 0 || existing.telecells > 0 {
                return Err(StoreError::NotEmpty {
                    lamps: existing.lamps,
                });
            }
            super::seed::insert_estate(&c, &estate).await?;
            counts(&c).await
        })
    }

    fn reset(&self) -> StoreResult<()> {
        self.write(|c| async move { super::seed::clear_all(&c).await })
    }
}

async fn counts(c: &Client) -> StoreResult<EstateCounts> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM zones), (SELECT count(*) FROM circuits), \
             (SELECT count(*) FROM basestations), (SELECT count(*) FROM telecells), \
             (SELECT count(*) FROM assets), (SELECT count(*) FROM lamps), (SELECT count(*) FROM users)",
            &[],
        )
        .await
        .map_err(db_error)?;
    Ok(EstateCounts {
        zones: get(&row, 0)?,
        circuits: get(&row, 1)?,
        basestations: get(&row, 2)?,
        telecells: get(&row, 3)?,
        assets: get(&row, 4)?,
        lamps: get(&row, 5)?,
        users: get(&row, 6)?,
    })
}

/// The record, its row locked until the change commits: a server sharing the database that
/// changes it at once waits, then sees the new version.
pub(super) async fn locked<T: Stored>(c: &Client, id: i64) -> StoreResult<T> {
    c.execute(
        &format!("SELECT 1 FROM {} WHERE id = $1 FOR UPDATE", T::TABLE),
        &[&id],
    )
    .await
    .map_err(db_error)?;
    fetch(c, id).await
}

/// A referenced record must exist.
async fn require_exists(
    c: &Client,
    field: &'static str,
    kind: EntityKind,
    id: i64,
) -> StoreResult<()> {
    let found = c
        .query_opt(
            &format!(
                "SELECT 1 FROM {} WHERE id = $1",
                crate::store::table_of(kind)
            ),
            &[&id],
        )
        .await
        .map_err(db_error)?;
    found
        .map(|_| ())
        .ok_or(StoreError::MissingReference { field, kind, id })
}

/// A referenced record must exist and not be soft-deleted.
async fn require_live(
    c: &Client,
    field: &'static str,
    kind: EntityKind,
    id: i64,
) -> StoreResult<()> {
    let row = c
        .query_opt(
            &format!(
                "SELECT status FROM {} WHERE id = $1",
                crate::store::table_of(kind)
            ),
            &[&id],
        )
        .await
        .map_err(db_error)?;
    let status: Option<String> = row.map(|row| get(&row, 0)).transpose()?;
    match status.as_deref() {
        None => Err(StoreError::MissingReference { field, kind, id }),
        Some("deleted") => Err(StoreError::Conflict(format!(
            "{field}: {kind} {id} is deleted; restore it (update its status) first"
        ))),
        Some(_) => Ok(()),
    }
}

async fn lamp_driver(c: &Client, lamp_id: i64) -> StoreResult<Option<i64>> {
    let row = c
        .query_opt("SELECT telecell_id FROM lamps WHERE id = $1", &[&lamp_id])
        .await
        .map_err(db_error)?
        .ok_or(StoreError::MissingReference {
            field: "lamp_ids",
            kind: EntityKind::Lamp,
            id: lamp_id,
        })?;
    get(&row, 0)
}

async fn set_lamp_driver(c: &Client, lamp_id: i64, telecell_id: Option<i64>) -> StoreResult<()> {
    c.execute(
        "UPDATE lamps SET telecell_id = $2, version = version + 1, updated_at = $3 WHERE id = $1",
        &[&lamp_id, &telecell_id, &millis(Utc::now())],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(super) async fn soft_delete<T: Stored>(c: &Client, id: i64) -> StoreResult<T> {
    // Deleting twice is not an error: the record simply stays deleted at its version.
    c.execute(
        &format!(
            "UPDATE {} SET status = $2, version = version + 1, updated_at = $3 WHERE id = $1 AND status <> $2",
            T::TABLE
        ),
        &[&id, &EntityStatus::Deleted.as_str(), &millis(Utc::now())],
    )
    .await
    .map_err(db_error)?;
    fetch(c, id).await
}

/// Removes a soft-deleted record for good, refusing while anything still depends on it.
pub(super) async fn prune<T: Stored>(
    c: &Client,
    id: i64,
    dependents: &[(&str, &str)],
) -> StoreResult<()> {
    let row = c
        .query_opt(
            &format!("SELECT status FROM {} WHERE id = $1 FOR UPDATE", T::TABLE),
            &[&id],
        )
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound { kind: T::KIND, id })?;
    let status: String = get(&row, 0)?;
    if status != EntityStatus::Deleted.as_str() {
        return Err(StoreError::Conflict(format!(
            "{} {id} is {status}; delete it before pruning it",
            T::KIND
        )));
    }
    for (sql, what) in dependents {
        let count: i64 = get(&c.query_one(*sql, &[&id]).await.map_err(db_error)?, 0)?;
        if count > 0 {
            return Err(StoreError::Conflict(format!(
                "{} {id} cannot be pruned: {count} {what}; move or prune them first",
                T::KIND
            )));
        }
    }
    c.execute(&format!("DELETE FROM {} WHERE id = $1", T::TABLE), &[&id])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Maps a unique violation on `field` to a clear duplicate error.
pub(super) fn unique(
    error: tokio_postgres::Error,
    kind: EntityKind,
    field: &'static str,
    value: &str,
) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Duplicate {
            kind,
            field,
            value: value.to_owned(),
        }
    } else {
        db_error(error)
    }
}
