//! How each record is read from SQLite: its columns, its joins, and the generic get and
//! scan (keyset paging, status filter, R*Tree box search) built from them.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::{ToSql, Type};
use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::db_error;
use crate::domain::geo::GeoPoint;
use crate::domain::inventory::{
    Asset, Basestation, ControlType, EntityStatus, Lamp, LampTechnology, LampType, Record,
    RecordMeta, Role, Telecell, User,
};
use crate::store::{Scan, StatusFilter, StoreError, StoreResult};

/// Where a record's location lives, for box searches.
pub(super) struct Located {
    /// FROM clause that starts at the R*Tree (aliased `r`) so the box drives the plan.
    pub from: &'static str,
    pub lat: &'static str,
    pub lon: &'static str,
}

/// A record type as SQLite stores it. The main table is always aliased `e`, and `COLUMNS`
/// starts with `e.id`.
pub(super) trait Stored: Record + Sized {
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    const FROM: &'static str;
    const LOCATED: Option<Located>;
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
}

pub(super) fn fetch<T: Stored>(connection: &Connection, id: i64) -> StoreResult<T> {
    let sql = format!("SELECT {} FROM {} WHERE e.id = ?1", T::COLUMNS, T::FROM);
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id], T::from_row).optional())
        .map_err(db_error)?
        .ok_or(StoreError::NotFound { kind: T::KIND, id })
}

pub(super) fn scan<T: Stored>(connection: &Connection, scan: &Scan) -> StoreResult<Vec<T>> {
    let Some(area) = scan.area else {
        let found = scan_range::<T>(connection, scan, None)?;
        return Ok(found.into_iter().map(|(_, record)| record).collect());
    };
    // A box across the antimeridian is two searches; their ids are merged back into order.
    let mut found = Vec::new();
    for range in area.lon_ranges() {
        found.extend(scan_range::<T>(
            connection,
            scan,
            Some([area.south(), area.north(), range.west, range.east]),
        )?);
    }
    if area.lon_ranges().len() > 1 {
        found.sort_by_key(|(id, _)| *id);
        found.truncate(scan.limit);
    }
    Ok(found.into_iter().map(|(_, record)| record).collect())
}

/// One keyset page; `bounds` is `[south, north, west, east]` with west <= east.
fn scan_range<T: Stored>(
    connection: &Connection,
    scan: &Scan,
    bounds: Option<[f64; 4]>,
) -> StoreResult<Vec<(i64, T)>> {
    let (from, box_clause) = match (bounds, T::LOCATED) {
        (Some(_), Some(located)) => (
            located.from,
            // The R*Tree stores 32-bit floats rounded outwards, so it only narrows the
            // search; the exact comparison on the real columns decides.
            format!(
                " AND r.max_lat >= :south AND r.min_lat <= :north AND r.max_lon >= :west AND r.min_lon <= :east \
                 AND {lat} BETWEEN :south AND :north AND {lon} BETWEEN :west AND :east",
                lat = located.lat,
                lon = located.lon
            ),
        ),
        _ => (T::FROM, String::new()),
    };
    let status_clause = match scan.status {
        StatusFilter::Live => " AND e.status != 'deleted'",
        StatusFilter::All => "",
        StatusFilter::Only(_) => " AND e.status = :status",
    };
    let sql = format!(
        "SELECT {columns} FROM {from} WHERE e.id > :after{status_clause}{box_clause} ORDER BY e.id LIMIT :limit",
        columns = T::COLUMNS,
    );
    let limit = i64::try_from(scan.limit).unwrap_or(i64::MAX);
    let status_name = match scan.status {
        StatusFilter::Only(status) => status.as_str(),
        _ => "",
    };
    let mut params: Vec<(&str, &dyn ToSql)> = vec![(":after", &scan.after_id), (":limit", &limit)];
    if matches!(scan.status, StatusFilter::Only(_)) {
        params.push((":status", &status_name));
    }
    let [south, north, west, east] = bounds.unwrap_or_default();
    if !box_clause.is_empty() {
        params.extend([
            (":south", &south as &dyn ToSql),
            (":north", &north),
            (":west", &west),
            (":east", &east),
        ]);
    }
    let mut statement = connection.prepare_cached(&sql).map_err(db_error)?;
    let rows = statement
        .query_map(params.as_slice(), |row| {
            Ok((row.get::<_, i64>(0)?, T::from_row(row)?))
        })
        .map_err(db_error)?;
    let mut found = Vec::with_capacity(scan.limit.min(10_000));
    for row in rows {
        found.push(row.map_err(db_error)?);
    }
    Ok(found)
}

pub(super) fn millis(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_millis()
}

fn instant(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(index)?;
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| bad_value(index, format!("instant {ms} out of range")))
}

fn point(row: &Row<'_>, lat: usize, lon: usize) -> rusqlite::Result<GeoPoint> {
    GeoPoint::new(row.get(lat)?, row.get(lon)?).map_err(|e| bad_value(lat, e.to_string()))
}

fn meta(row: &Row<'_>, first: usize) -> rusqlite::Result<RecordMeta> {
    Ok(RecordMeta {
        version: row.get(first)?,
        created_at: instant(row, first + 1)?,
        updated_at: instant(row, first + 2)?,
    })
}

fn parsed<T>(row: &Row<'_>, index: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| bad_value(index, format!("unknown value {text:?}")))
}

fn uuid(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    parsed(row, index, |text| Uuid::parse_str(text).ok())
}

/// A comma-separated id list from `group_concat`, in ascending order.
fn id_list(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<i64>> {
    let text: Option<String> = row.get(index)?;
    let mut ids = text
        .unwrap_or_default()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<i64>()
                .map_err(|e| bad_value(index, e.to_string()))
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

fn bad_value(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(BadValue(message)))
}

#[derive(Debug)]
struct BadValue(String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

/// Nullable id columns: NULL reads as None.
fn optional_id(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<i64>> {
    row.get::<_, Option<i64>>(index)
}

impl Stored for Basestation {
    const TABLE: &'static str = "basestations";
    const COLUMNS: &'static str = "e.id, e.uuid, e.name, e.firmware_version, e.lat, e.lon, e.status, \
        e.version, e.created_at, e.updated_at, \
        (SELECT count(*) FROM telecells c WHERE c.basestation_id = e.id AND c.status != 'deleted')";
    const FROM: &'static str = "basestations e";
    const LOCATED: Option<Located> = Some(Located {
        from: "basestations_rtree r CROSS JOIN basestations e ON e.id = r.id",
        lat: "e.lat",
        lon: "e.lon",
    });

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            uuid: uuid(row, 1)?,
            name: row.get(2)?,
            firmware_version: row.get(3)?,
            location: point(row, 4, 5)?,
            status: parsed(row, 6, EntityStatus::parse)?,
            meta: meta(row, 7)?,
            telecell_count: row.get(10)?,
        })
    }
}

impl Stored for Telecell {
    const TABLE: &'static str = "telecells";
    const COLUMNS: &'static str = "e.id, e.uuid, e.basestation_id, e.relay_via_id, e.lat, e.lon, \
        e.firmware_version, e.status, e.version, e.created_at, e.updated_at, \
        (SELECT group_concat(l.id) FROM lamps l WHERE l.telecell_id = e.id)";
    const FROM: &'static str = "telecells e";
    const LOCATED: Option<Located> = Some(Located {
        from: "telecells_rtree r CROSS JOIN telecells e ON e.id = r.id",
        lat: "e.lat",
        lon: "e.lon",
    });

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            uuid: uuid(row, 1)?,
            basestation_id: row.get(2)?,
            relay_via_id: optional_id(row, 3)?,
            location: point(row, 4, 5)?,
            firmware_version: row.get(6)?,
            status: parsed(row, 7, EntityStatus::parse)?,
            meta: meta(row, 8)?,
            lamp_ids: id_list(row, 11)?,
        })
    }
}

impl Stored for Asset {
    const TABLE: &'static str = "assets";
    const COLUMNS: &'static str = "e.id, e.reference, e.lat, e.lon, e.zone_id, z.name, e.circuit_id, \
        c.name, e.status, e.version, e.created_at, e.updated_at, \
        (SELECT group_concat(l.id) FROM lamps l WHERE l.asset_id = e.id)";
    const FROM: &'static str =
        "assets e JOIN zones z ON z.id = e.zone_id LEFT JOIN circuits c ON c.id = e.circuit_id";
    const LOCATED: Option<Located> = Some(Located {
        from: "assets_rtree r CROSS JOIN assets e ON e.id = r.id \
               JOIN zones z ON z.id = e.zone_id LEFT JOIN circuits c ON c.id = e.circuit_id",
        lat: "e.lat",
        lon: "e.lon",
    });

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            reference: row.get(1)?,
            location: point(row, 2, 3)?,
            zone_id: row.get(4)?,
            zone_name: row.get(5)?,
            circuit_id: optional_id(row, 6)?,
            circuit_name: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
            status: parsed(row, 8, EntityStatus::parse)?,
            meta: meta(row, 9)?,
            lamp_ids: id_list(row, 12)?,
        })
    }
}

impl Stored for Lamp {
    const TABLE: &'static str = "lamps";
    const COLUMNS: &'static str = "e.id, e.reference, e.asset_id, e.telecell_id, e.status, e.version, \
        e.created_at, e.updated_at, t.id, t.name, t.technology, t.wattage_w, t.control_type, \
        a.lat, a.lon, a.zone_id";
    const FROM: &'static str = "lamps e JOIN lamp_types t ON t.id = e.lamp_type_id \
        LEFT JOIN assets a ON a.id = e.asset_id";
    const LOCATED: Option<Located> = Some(Located {
        from: "assets_rtree r CROSS JOIN assets a ON a.id = r.id CROSS JOIN lamps e ON e.asset_id = a.id \
               JOIN lamp_types t ON t.id = e.lamp_type_id",
        lat: "a.lat",
        lon: "a.lon",
    });

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let location = match (
            row.get::<_, Option<f64>>(13)?,
            row.get::<_, Option<f64>>(14)?,
        ) {
            (Some(lat), Some(lon)) => {
                Some(GeoPoint::new(lat, lon).map_err(|e| bad_value(13, e.to_string()))?)
            }
            _ => None,
        };
        Ok(Self {
            id: row.get(0)?,
            reference: row.get(1)?,
            asset_id: optional_id(row, 2)?,
            telecell_id: optional_id(row, 3)?,
            status: parsed(row, 4, EntityStatus::parse)?,
            meta: meta(row, 5)?,
            lamp_type: lamp_type(row, 8)?,
            location,
            zone_id: optional_id(row, 15)?,
        })
    }
}

pub(super) fn lamp_type(row: &Row<'_>, first: usize) -> rusqlite::Result<LampType> {
    Ok(LampType {
        id: row.get(first)?,
        name: row.get::<_, String>(first + 1)?.into(),
        technology: parsed(row, first + 2, LampTechnology::parse)?,
        wattage_w: row.get(first + 3)?,
        control_type: parsed(row, first + 4, ControlType::parse)?,
    })
}

impl Stored for User {
    const TABLE: &'static str = "users";
    // The password hash is never selected here: it cannot leak into a reply.
    const COLUMNS: &'static str =
        "e.id, e.username, e.display_name, e.role, e.status, e.version, e.created_at, e.updated_at";
    const FROM: &'static str = "users e";
    const LOCATED: Option<Located> = None;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            username: row.get(1)?,
            display_name: row.get(2)?,
            role: parsed(row, 3, Role::parse)?,
            status: parsed(row, 4, EntityStatus::parse)?,
            meta: meta(row, 5)?,
        })
    }
}

/// An instant stored as milliseconds since the epoch.
pub(super) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
