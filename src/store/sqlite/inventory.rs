//! The estate in SQLite (`InventoryStore`): reads on pooled readers, changes on the writer,
//! each change checked (references, versions, dependents) inside its savepoint.

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::lamp_index::Touched;
use super::rows::{Stored, fetch, lamp_type, millis, scan};
use super::{SqliteStore, db_error};
use crate::domain::estate::Estate;
use crate::domain::geo::GeoBox;
use crate::domain::inventory::{
    Asset, AssetPatch, Basestation, BasestationPatch, Circuit, EntityKind, EntityStatus, Lamp,
    LampPatch, LampType, NewAsset, NewBasestation, NewLamp, NewTelecell, Telecell, TelecellPatch,
    Zone,
};
use crate::store::check_version;
use chrono::Utc;

use crate::store::{EstateCounts, InventoryStore, Scan, StoreError, StoreResult};

impl InventoryStore for SqliteStore {
    fn basestation(&self, id: i64) -> StoreResult<Basestation> {
        self.read(|c| fetch(c, id))
    }

    fn basestations(&self, query: &Scan) -> StoreResult<Vec<Basestation>> {
        self.read(|c| scan(c, query))
    }

    fn create_basestation(&self, new: NewBasestation) -> StoreResult<Basestation> {
        self.write(move |c| {
            let now = millis(Utc::now());
            c.execute(
                "INSERT INTO basestations (uuid, name, firmware_version, lat, lon, status, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
                params![new.uuid.to_string(), new.name, new.firmware_version, new.location.lat(), new.location.lon(), new.status.as_str(), now],
            )
            .map_err(|e| unique(e, EntityKind::Basestation, "uuid", &new.uuid.to_string()))?;
            fetch(c, c.last_insert_rowid())
        })
    }

    fn update_basestation(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: BasestationPatch,
    ) -> StoreResult<Basestation> {
        self.write(move |c| {
            let mut record: Basestation = fetch(c, id)?;
            check_version(&record, expected_version)?;
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE basestations SET name = ?2, firmware_version = ?3, lat = ?4, lon = ?5, status = ?6, \
                 version = version + 1, updated_at = ?7 WHERE id = ?1",
                params![id, record.name, record.firmware_version, record.location.lat(), record.location.lon(), record.status.as_str(), millis(Utc::now())],
            )
            .map_err(db_error)?;
            fetch(c, id)
        })
    }

    fn delete_basestation(&self, id: i64) -> StoreResult<Basestation> {
        self.write(move |c| soft_delete(c, id))
    }

    fn prune_basestation(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| {
            prune::<Basestation>(
                c,
                id,
                &[(
                    "SELECT count(*) FROM telecells WHERE basestation_id = ?1",
                    "telecells report through it",
                )],
            )
        })
    }

    fn telecell(&self, id: i64) -> StoreResult<Telecell> {
        self.read(|c| fetch(c, id))
    }

    fn telecells(&self, query: &Scan) -> StoreResult<Vec<Telecell>> {
        self.read(|c| scan(c, query))
    }

    fn create_telecell(&self, new: NewTelecell) -> StoreResult<Telecell> {
        self.write(move |c| {
            require_live(c, "basestation_id", EntityKind::Basestation, new.basestation_id)?;
            if let Some(via) = new.relay_via_id {
                require_live(c, "relay_via_id", EntityKind::Telecell, via)?;
            }
            let now = millis(Utc::now());
            c.execute(
                "INSERT INTO telecells (uuid, basestation_id, relay_via_id, lat, lon, firmware_version, status, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)",
                params![new.uuid.to_string(), new.basestation_id, new.relay_via_id, new.location.lat(), new.location.lon(), new.firmware_version, new.status.as_str(), now],
            )
            .map_err(|e| unique(e, EntityKind::Telecell, "uuid", &new.uuid.to_string()))?;
            fetch(c, c.last_insert_rowid())
        })
    }

    fn update_telecell(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: TelecellPatch,
    ) -> StoreResult<Telecell> {
        self.write(move |c| {
            let mut record: Telecell = fetch(c, id)?;
            check_version(&record, expected_version)?;
            if let Some(basestation_id) = patch.basestation_id {
                require_live(c, "basestation_id", EntityKind::Basestation, basestation_id)?;
            }
            if let Some(Some(via)) = patch.relay_via_id {
                if via == id {
                    return Err(StoreError::Conflict(format!(
                        "relay_via_id: telecell {id} cannot relay through itself"
                    )));
                }
                require_live(c, "relay_via_id", EntityKind::Telecell, via)?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE telecells SET basestation_id = ?2, relay_via_id = ?3, lat = ?4, lon = ?5, firmware_version = ?6, \
                 status = ?7, version = version + 1, updated_at = ?8 WHERE id = ?1",
                params![id, record.basestation_id, record.relay_via_id, record.location.lat(), record.location.lon(), record.firmware_version, record.status.as_str(), millis(Utc::now())],
            )
            .map_err(db_error)?;
            fetch(c, id)
        })
    }

    fn delete_telecell(&self, id: i64) -> StoreResult<Telecell> {
        self.write(move |c| soft_delete(c, id))
    }

    fn prune_telecell(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| {
            prune::<Telecell>(
                c,
                id,
                &[
                    (
                        "SELECT count(*) FROM lamps WHERE telecell_id = ?1",
                        "lamps are driven by it",
                    ),
                    (
                        "SELECT count(*) FROM telecells WHERE relay_via_id = ?1",
                        "telecells relay through it",
                    ),
                ],
            )
        })
    }

    fn link_telecell_to_lamps(&self, telecell_id: i64, lamp_ids: &[i64]) -> StoreResult<Telecell> {
        let lamp_ids = lamp_ids.to_vec();
        self.write_touching(move |c| {
            require_live(c, "telecell_id", EntityKind::Telecell, telecell_id)?;
            for &lamp_id in &lamp_ids {
                match lamp_driver(c, lamp_id)? {
                    Some(other) if other != telecell_id => {
                        return Err(StoreError::Conflict(format!(
                            "lamp_ids: lamp {lamp_id} is driven by telecell {other}; remove it from that telecell first"
                        )));
                    }
                    _ => set_lamp_driver(c, lamp_id, Some(telecell_id))?,
                }
            }
            Ok((fetch(c, telecell_id)?, Touched::Lamps(lamp_ids)))
        })
    }

    fn unlink_telecell_from_lamps(
        &self,
        telecell_id: i64,
        lamp_ids: &[i64],
    ) -> StoreResult<Telecell> {
        let lamp_ids = lamp_ids.to_vec();
        self.write_touching(move |c| {
            require_exists(c, "telecell_id", EntityKind::Telecell, telecell_id)?;
            for &lamp_id in &lamp_ids {
                if lamp_driver(c, lamp_id)? != Some(telecell_id) {
                    return Err(StoreError::Conflict(format!(
                        "lamp_ids: lamp {lamp_id} is not driven by telecell {telecell_id}"
                    )));
                }
                set_lamp_driver(c, lamp_id, None)?;
            }
            Ok((fetch(c, telecell_id)?, Touched::Lamps(lamp_ids)))
        })
    }

    fn asset(&self, id: i64) -> StoreResult<Asset> {
        self.read(|c| fetch(c, id))
    }

    fn assets(&self, query: &Scan) -> StoreResult<Vec<Asset>> {
        self.read(|c| scan(c, query))
    }

    fn create_asset(&self, new: NewAsset) -> StoreResult<Asset> {
        self.write(move |c| {
            require_exists(c, "zone_id", EntityKind::Zone, new.zone_id)?;
            if let Some(circuit_id) = new.circuit_id {
                require_exists(c, "circuit_id", EntityKind::Circuit, circuit_id)?;
            }
            let now = millis(Utc::now());
            c.execute(
                "INSERT INTO assets (reference, lat, lon, zone_id, circuit_id, status, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
                params![new.reference, new.location.lat(), new.location.lon(), new.zone_id, new.circuit_id, new.status.as_str(), now],
            )
            .map_err(|e| unique(e, EntityKind::Asset, "reference", &new.reference))?;
            fetch(c, c.last_insert_rowid())
        })
    }

    fn update_asset(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: AssetPatch,
    ) -> StoreResult<Asset> {
        self.write_touching(move |c| {
            let mut record: Asset = fetch(c, id)?;
            check_version(&record, expected_version)?;
            if let Some(zone_id) = patch.zone_id {
                require_exists(c, "zone_id", EntityKind::Zone, zone_id)?;
            }
            if let Some(Some(circuit_id)) = patch.circuit_id {
                require_exists(c, "circuit_id", EntityKind::Circuit, circuit_id)?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE assets SET reference = ?2, lat = ?3, lon = ?4, zone_id = ?5, circuit_id = ?6, status = ?7, \
                 version = version + 1, updated_at = ?8 WHERE id = ?1",
                params![id, record.reference, record.location.lat(), record.location.lon(), record.zone_id, record.circuit_id, record.status.as_str(), millis(Utc::now())],
            )
            .map_err(|e| unique(e, EntityKind::Asset, "reference", &record.reference))?;
            let asset: Asset = fetch(c, id)?;
            let carried = Touched::Lamps(asset.lamp_ids.clone());
            Ok((asset, carried))
        })
    }

    fn delete_asset(&self, id: i64) -> StoreResult<Asset> {
        self.write(move |c| soft_delete(c, id))
    }

    fn prune_asset(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| {
            prune::<Asset>(
                c,
                id,
                &[(
                    "SELECT count(*) FROM lamps WHERE asset_id = ?1",
                    "lamps are mounted on it",
                )],
            )
        })
    }

    fn lamp(&self, id: i64) -> StoreResult<Lamp> {
        self.lamps.get(id).ok_or(StoreError::NotFound {
            kind: EntityKind::Lamp,
            id,
        })
    }

    fn lamps(&self, query: &Scan) -> StoreResult<Vec<Lamp>> {
        match query.area {
            None => Ok(self.lamps.scan(query)),
            // The R*Tree finds the ids (an index-only walk); the records come from memory.
            Some(area) => {
                let ids = self.read(|c| lamp_ids_in(c, area, query.after_id))?;
                Ok(self.lamps.pick(&ids, query))
            }
        }
    }

    fn create_lamp(&self, new: NewLamp) -> StoreResult<Lamp> {
        self.write_touching(move |c| {
            require_exists(c, "lamp_type_id", EntityKind::LampType, new.lamp_type_id)?;
            if let Some(asset_id) = new.asset_id {
                require_live(c, "asset_id", EntityKind::Asset, asset_id)?;
            }
            if let Some(telecell_id) = new.telecell_id {
                require_live(c, "telecell_id", EntityKind::Telecell, telecell_id)?;
            }
            let now = millis(Utc::now());
            c.execute(
                "INSERT INTO lamps (reference, asset_id, lamp_type_id, telecell_id, status, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                params![new.reference, new.asset_id, new.lamp_type_id, new.telecell_id, new.status.as_str(), now],
            )
            .map_err(|e| unique(e, EntityKind::Lamp, "reference", &new.reference))?;
            let id = c.last_insert_rowid();
            Ok((fetch(c, id)?, Touched::Lamps(vec![id])))
        })
    }

    fn update_lamp(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: LampPatch,
    ) -> StoreResult<Lamp> {
        self.write_touching(move |c| {
            let mut record: Lamp = fetch(c, id)?;
            check_version(&record, expected_version)?;
            if let Some(lamp_type_id) = patch.lamp_type_id {
                require_exists(c, "lamp_type_id", EntityKind::LampType, lamp_type_id)?;
            }
            patch.apply_to(&mut record);
            c.execute(
                "UPDATE lamps SET reference = ?2, lamp_type_id = ?3, status = ?4, version = version + 1, updated_at = ?5 \
                 WHERE id = ?1",
                params![id, record.reference, record.lamp_type.id, record.status.as_str(), millis(Utc::now())],
            )
            .map_err(|e| unique(e, EntityKind::Lamp, "reference", &record.reference))?;
            Ok((fetch(c, id)?, Touched::Lamps(vec![id])))
        })
    }

    fn delete_lamp(&self, id: i64) -> StoreResult<Lamp> {
        self.write_touching(move |c| Ok((soft_delete(c, id)?, Touched::Lamps(vec![id]))))
    }

    fn prune_lamp(&self, id: i64) -> StoreResult<()> {
        self.write_touching(move |c| {
            prune::<Lamp>(c, id, &[])?;
            // Its raw history goes with it (a pass over the history, which is in time order:
            // pruning a lamp is rare); its faults stay, as the record of what happened.
            c.execute("DELETE FROM readings WHERE lamp_id = ?1", [id])
                .map_err(db_error)?;
            c.execute("DELETE FROM latest_readings WHERE lamp_id = ?1", [id])
                .map_err(db_error)?;
            Ok(((), Touched::Lamps(vec![id])))
        })
    }

    fn mount_lamp(&self, lamp_id: i64, asset_id: i64) -> StoreResult<Lamp> {
        self.write_touching(move |c| {
            require_exists(c, "lamp_id", EntityKind::Lamp, lamp_id)?;
            require_live(c, "asset_id", EntityKind::Asset, asset_id)?;
            c.execute(
                "UPDATE lamps SET asset_id = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
                params![lamp_id, asset_id, millis(Utc::now())],
            )
            .map_err(db_error)?;
            Ok((fetch(c, lamp_id)?, Touched::Lamps(vec![lamp_id])))
        })
    }

    fn zone_names(&self) -> StoreResult<Vec<(i64, String)>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached("SELECT id, name FROM zones")
                .map_err(db_error)?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn zones(&self) -> StoreResult<Vec<Zone>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT z.id, z.name, (SELECT count(*) FROM assets a WHERE a.zone_id = z.id AND a.status != 'deleted') \
                     FROM zones z ORDER BY z.name",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(Zone { id: row.get(0)?, name: row.get(1)?, asset_count: row.get(2)? })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn circuits(&self, zone_id: Option<i64>) -> StoreResult<Vec<Circuit>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT k.id, k.name, k.zone_id, (SELECT count(*) FROM assets a WHERE a.circuit_id = k.id AND a.status != 'deleted') \
                     FROM circuits k WHERE ?1 IS NULL OR k.zone_id = ?1 ORDER BY k.name",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map([zone_id], |row| {
                    Ok(Circuit { id: row.get(0)?, name: row.get(1)?, zone_id: row.get(2)?, asset_count: row.get(3)? })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn lamp_types(&self) -> StoreResult<Vec<LampType>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached("SELECT id, name, technology, wattage_w, control_type FROM lamp_types ORDER BY id")
                .map_err(db_error)?;
            let rows = statement.query_map([], |row| lamp_type(row, 0)).map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn counts(&self) -> StoreResult<EstateCounts> {
        self.read(counts)
    }

    fn import_estate(&self, estate: &Estate) -> StoreResult<EstateCounts> {
        let estate = estate.clone();
        self.write_touching(move |c| {
            let existing = counts(c)?;
            if existing.lamps > 0 || existing.assets > 0 || existing.telecells > 0 {
                return Err(StoreError::NotEmpty {
                    lamps: existing.lamps,
                });
            }
            super::seed::insert_estate(c, &estate)?;
            Ok((counts(c)?, Touched::Everything))
        })
    }

    fn reset(&self) -> StoreResult<()> {
        self.write_touching(|c| Ok((super::seed::clear_all(c)?, Touched::Everything)))
    }
}

/// Ids of the lamps whose asset stands inside the box, after a cursor, ascending.
fn lamp_ids_in(c: &Connection, area: GeoBox, after_id: i64) -> StoreResult<Vec<i64>> {
    let mut statement = c
        .prepare_cached(
            "SELECT e.id FROM assets_rtree r CROSS JOIN assets a ON a.id = r.id \
             CROSS JOIN lamps e ON e.asset_id = a.id \
             WHERE e.id > ?1 AND r.max_lat >= ?2 AND r.min_lat <= ?3 AND r.max_lon >= ?4 AND r.min_lon <= ?5 \
             AND a.lat BETWEEN ?2 AND ?3 AND a.lon BETWEEN ?4 AND ?5",
        )
        .map_err(db_error)?;
    let mut ids = Vec::new();
    for range in area.lon_ranges() {
        let rows = statement
            .query_map(
                params![after_id, area.south(), area.north(), range.west, range.east],
                |row| row.get(0),
            )
            .map_err(db_error)?;
        for id in rows {
            ids.push(id.map_err(db_error)?);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn counts(c: &Connection) -> StoreResult<EstateCounts> {
    let count = |table: &str| -> StoreResult<i64> {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .map_err(db_error)
    };
    Ok(EstateCounts {
        zones: count("zones")?,
        circuits: count("circuits")?,
        basestations: count("basestations")?,
        telecells: count("telecells")?,
        assets: count("assets")?,
        lamps: count("lamps")?,
        users: count("users")?,
    })
}

/// A referenced record must exist.
fn require_exists(
    c: &Connection,
    field: &'static str,
    kind: EntityKind,
    id: i64,
) -> StoreResult<()> {
    let found = c
        .prepare_cached(&format!(
            "SELECT 1 FROM {} WHERE id = ?1",
            crate::store::table_of(kind)
        ))
        .and_then(|mut s| s.query_row([id], |_| Ok(())).optional())
        .map_err(db_error)?;
    found.ok_or(StoreError::MissingReference { field, kind, id })
}

/// A referenced record must exist and not be soft-deleted.
fn require_live(c: &Connection, field: &'static str, kind: EntityKind, id: i64) -> StoreResult<()> {
    let status: Option<String> = c
        .prepare_cached(&format!(
            "SELECT status FROM {} WHERE id = ?1",
            crate::store::table_of(kind)
        ))
        .and_then(|mut s| s.query_row([id], |row| row.get(0)).optional())
        .map_err(db_error)?;
    match status.as_deref() {
        None => Err(StoreError::MissingReference { field, kind, id }),
        Some("deleted") => Err(StoreError::Conflict(format!(
            "{field}: {kind} {id} is deleted; restore it (update its status) first"
        ))),
        Some(_) => Ok(()),
    }
}

fn lamp_driver(c: &Connection, lamp_id: i64) -> StoreResult<Option<i64>> {
    c.prepare_cached("SELECT telecell_id FROM lamps WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([lamp_id], |row| row.get::<_, Option<i64>>(0))
                .optional()
        })
        .map_err(db_error)?
        .ok_or(StoreError::MissingReference {
            field: "lamp_ids",
            kind: EntityKind::Lamp,
            id: lamp_id,
        })
}

fn set_lamp_driver(c: &Connection, lamp_id: i64, telecell_id: Option<i64>) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE lamps SET telecell_id = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![lamp_id, telecell_id, millis(Utc::now())]))
    .map_err(db_error)?;
    Ok(())
}

pub(super) fn soft_delete<T: Stored>(c: &Connection, id: i64) -> StoreResult<T> {
    let changed = c
        .execute(
            &format!(
                "UPDATE {} SET status = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1 AND status != ?2",
                T::TABLE
            ),
            params![id, EntityStatus::Deleted.as_str(), millis(Utc::now())],
        )
        .map_err(db_error)?;
    // Deleting twice is not an error: the record simply stays deleted at its version.
    let _ = changed;
    fetch(c, id)
}

/// Removes a soft-deleted record for good, refusing while anything still depends on it.
pub(super) fn prune<T: Stored>(
    c: &Connection,
    id: i64,
    dependents: &[(&str, &str)],
) -> StoreResult<()> {
    let status: String = c
        .query_row(
            &format!("SELECT status FROM {} WHERE id = ?1", T::TABLE),
            [id],
            |row| row.get(0),
        )
        .optional()
        .map_err(db_error)?
        .ok_or(StoreError::NotFound { kind: T::KIND, id })?;
    if status != EntityStatus::Deleted.as_str() {
        return Err(StoreError::Conflict(format!(
            "{} {id} is {status}; delete it before pruning it",
            T::KIND
        )));
    }
    for (sql, what) in dependents {
        let count: i64 = c.query_row(sql, [id], |row| row.get(0)).map_err(db_error)?;
        if count > 0 {
            return Err(StoreError::Conflict(format!(
                "{} {id} cannot be pruned: {count} {what}; move or prune them first",
                T::KIND
            )));
        }
    }
    c.execute(&format!("DELETE FROM {} WHERE id = ?1", T::TABLE), [id])
        .map_err(db_error)?;
    Ok(())
}

/// Maps a UNIQUE violation on `field` to a clear duplicate error.
pub(super) fn unique(
    error: rusqlite::Error,
    kind: EntityKind,
    field: &'static str,
    value: &str,
) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            StoreError::Duplicate {
                kind,
                field,
                value: value.to_owned(),
            }
        }
        _ => db_error(error),
    }
}
