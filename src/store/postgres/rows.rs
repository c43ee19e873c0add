//! How each record is read from PostgreSQL: its columns, its joins, and the generic get and
//! scan (keyset paging, status filter, box search on the GiST-indexed points).

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Conn as Client;
use uuid::Uuid;

use super::db_error;
use crate::domain::geo::GeoPoint;
use crate::domain::inventory::{
    Asset, Basestation, ControlType, EntityStatus, Lamp, LampTechnology, LampType, Record,
    RecordMeta, Role, Telecell, User,
};
use crate::store::{Scan, StatusFilter, StoreError, StoreResult};

/// A record type as PostgreSQL stores it. The main table is always aliased `e`, and
/// `COLUMNS` starts with `e.id`.
pub(super) trait Stored: Record + Sized + Send + 'static {
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    const FROM: &'static str;
    /// The point column a box search tests, when the record has a place.
    const POSITION: Option<&'static str>;
    fn from_row(row: &Row) -> StoreResult<Self>;
}

pub(super) async fn fetch<T: Stored>(client: &Client, id: i64) -> StoreResult<T> {
    let sql = format!("SELECT {} FROM {} WHERE e.id = $1", T::COLUMNS, T::FROM);
    let statement = client.statement(&sql).await?;
    let row = client
        .query_opt(&statement, &[&id])
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => T::from_row(&row),
        None => Err(StoreError::NotFound { kind: T::KIND, id }),
    }
}

pub(super) async fn scan<T: Stored>(client: &Client, scan: &Scan) -> StoreResult<Vec<T>> {
    let Some(area) = scan.area else {
        return scan_range::<T>(client, scan, None).await;
    };
    // A box across the antimeridian is two searches; their records are merged back in order.
    let mut found = Vec::new();
    for range in area.lon_ranges() {
        found.extend(
            scan_range::<T>(
                client,
                scan,
                Some([area.south(), area.north(), range.west, range.east]),
            )
            .await?,
        );
    }
    if area.lon_ranges().len() > 1 {
        found.sort_by_key(|record| record.id());
        found.truncate(scan.limit);
    }
    Ok(found)
}

/// One keyset page; `bounds` is `[south, north, west, east]` with west <= east.
async fn scan_range<T: Stored>(
    client: &Client,
    scan: &Scan,
    bounds: Option<[f64; 4]>,
) -> StoreResult<Vec<T>> {
    let limit = i64::try_from(scan.limit).unwrap_or(i64::MAX);
    let status_name = match scan.status {
        StatusFilter::Only(status) => status.as_str(),
        _ => "",
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&scan.after_id, &limit];
    let status_clause = match scan.status {
        StatusFilter::Live => " AND e.status <> 'deleted'".to_owned(),
        StatusFilter::All => String::new(),
        StatusFilter::Only(_) => {
            params.push(&status_name);
            format!(" AND e.status = ${}", params.len())
        }
    };
    let [south, north, west, east] = bounds.unwrap_or_default();
    let box_clause = match (bounds, T::POSITION) {
        (Some(_), Some(position)) => {
            let first = params.len() + 1;
            params.extend([&west as &(dyn ToSql + Sync), &south, &east, &north]);
            format!(
                " AND {position} <@ box(point(${first}, ${}), point(${}, ${}))",
                first + 1,
                first + 2,
                first + 3
            )
        }
        _ => String::new(),
    };
    let sql = format!(
        "SELECT {columns} FROM {from} WHERE e.id > $1{status_clause}{box_clause} ORDER BY e.id LIMIT $2",
        columns = T::COLUMNS,
        from = T::FROM,
    );
    let statement = client.statement(&sql).await?;
    let rows = client.query(&statement, &params).await.map_err(db_error)?;
    rows.iter().map(T::from_row).collect()
}

pub(super) fn millis(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_millis()
}

/// An instant stored as milliseconds since the epoch.
pub(super) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> StoreResult<T> {
    row.try_get(index).map_err(db_error)
}

fn bad(index: usize, what: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("column {index}: {what}"))
}

fn point(row: &Row, lat: usize, lon: usize) -> StoreResult<GeoPoint> {
    GeoPoint::new(get(row, lat)?, get(row, lon)?).map_err(|e| bad(lat, e))
}

fn meta(row: &Row, first: usize) -> StoreResult<RecordMeta> {
    Ok(RecordMeta {
        version: get(row, first)?,
        created_at: from_millis(get(row, first + 1)?),
        updated_at: from_millis(get(row, first + 2)?),
    })
}

pub(super) fn parsed<T>(row: &Row, index: usize, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let text: &str = get(row, index)?;
    parse(text).ok_or_else(|| bad(index, format!("unknown value {text:?}")))
}

fn uuid(row: &Row, index: usize) -> StoreResult<Uuid> {
    parsed(row, index, |text| Uuid::parse_str(text).ok())
}

impl Stored for Basestation {
    const TABLE: &'static str = "basestations";
    const COLUMNS: &'static str = "e.id, e.uuid, e.name, e.firmware_version, e.lat, e.lon, e.status, \
        e.version, e.created_at, e.updated_at, \
        (SELECT count(*) FROM telecells c WHERE c.basestation_id = e.id AND c.status <> 'deleted')";
    const FROM: &'static str = "basestations e";
    const POSITION: Option<&'static str> = Some("e.position");

    fn from_row(row: &Row) -> StoreResult<Self> {
        Ok(Self {
            id: get(row, 0)?,
            uuid: uuid(row, 1)?,
            name: get(row, 2)?,
            firmware_version: get(row, 3)?,
            location: point(row, 4, 5)?,
            status: parsed(row, 6, EntityStatus::parse)?,
            meta: meta(row, 7)?,
            telecell_count: get(row, 10)?,
        })
    }
}

impl Stored for Telecell {
    const TABLE: &'static str = "telecells";
    const COLUMNS: &'static str = "e.id, e.uuid, e.basestation_id, e.relay_via_id, e.lat, e.lon, \
        e.firmware_version, e.status, e.version, e.created_at, e.updated_at, \
        ARRAY(SELECT l.id FROM lamps l WHERE l.telecell_id = e.id ORDER BY l.id)";
    const FROM: &'static str = "telecells e";
    const POSITION: Option<&'static str> = Some("e.position");

    fn from_row(row: &Row) -> StoreResult<Self> {
        Ok(Self {
            id: get(row, 0)?,
            uuid: uuid(row, 1)?,
            basestation_id: get(row, 2)?,
            relay_via_id: get(row, 3)?,
            location: point(row, 4, 5)?,
            firmware_version: get(row, 6)?,
            status: parsed(row, 7, EntityStatus::parse)?,
            meta: meta(row, 8)?,
            lamp_ids: get(row, 11)?,
        })
    }
}

impl Stored for Asset {
    const TABLE: &'static str = "assets";
    const COLUMNS: &'static str = "e.id, e.reference, e.lat, e.lon, e.zone_id, z.name, e.circuit_id, \
        c.name, e.status, e.version, e.created_at, e.updated_at, \
        ARRAY(SELECT l.id FROM lamps l WHERE l.asset_id = e.id ORDER BY l.id)";
    const FROM: &'static str =
        "assets e JOIN zones z ON z.id = e.zone_id LEFT JOIN circuits c ON c.id = e.circuit_id";
    const POSITION: Option<&'static str> = Some("e.position");

    fn from_row(row: &Row) -> StoreResult<Self> {
        Ok(Self {
            id: get(row, 0)?,
            reference: get(row, 1)?,
            location: point(row, 2, 3)?,
            zone_id: get(row, 4)?,
            zone_name: get(row, 5)?,
            circuit_id: get(row, 6)?,
            circuit_name: get::<Option<String>>(row, 7)?.unwrap_or_default(),
            status: parsed(row, 8, EntityStatus::parse)?,
            meta: meta(row, 9)?,
            lamp_ids: get(row, 12)?,
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
    const POSITION: Option<&'static str> = Some("a.position");

    fn from_row(row: &Row) -> StoreResult<Self> {
        let location = match (get::<Option<f64>>(row, 13)?, get::<Option<f64>>(row, 14)?) {
            (Some(lat), Some(lon)) => Some(GeoPoint::new(lat, lon).map_err(|e| bad(13, e))?),
            _ => None,
        };
        Ok(Self {
            id: get(row, 0)?,
            reference: get(row, 1)?,
            asset_id: get(row, 2)?,
            telecell_id: get(row, 3)?,
            status: parsed(row, 4, EntityStatus::parse)?,
            meta: meta(row, 5)?,
            lamp_type: lamp_type(row, 8)?,
            location,
            zone_id: get(row, 15)?,
        })
    }
}

pub(super) fn lamp_type(row: &Row, first: usize) -> StoreResult<LampType> {
    let wattage: i64 = get(row, first + 3)?;
    Ok(LampType {
        id: get(row, first)?,
        name: get::<&str>(row, first + 1)?.into(),
        technology: parsed(row, first + 2, LampTechnology::parse)?,
        wattage_w: u32::try_from(wattage).map_err(|e| bad(first + 3, e))?,
        control_type: parsed(row, first + 4, ControlType::parse)?,
    })
}

impl Stored for User {
    const TABLE: &'static str = "users";
    // The password hash is never selected here: it cannot leak into a reply.
    const COLUMNS: &'static str =
        "e.id, e.username, e.display_name, e.role, e.status, e.version, e.created_at, e.updated_at";
    const FROM: &'static str = "users e";
    const POSITION: Option<&'static str> = None;

    fn from_row(row: &Row) -> StoreResult<Self> {
        Ok(Self {
            id: get(row, 0)?,
            username: get(row, 1)?,
            display_name: get(row, 2)?,
            role: parsed(row, 3, Role::parse)?,
            status: parsed(row, 4, EntityStatus::parse)?,
            meta: meta(row, 5)?,
        })
    }
}
