//! An in-memory copy of every lamp, kept in step by the writer: lamp lookups and listings are
//! served from here at the cost of a map access, not a SQLite transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use rusqlite::Connection;

use super::rows::{fetch, scan};
use crate::domain::inventory::Lamp;
use crate::store::{Scan, StatusFilter, StoreError, StoreResult};

/// Which lamps a committed change altered, so the index can re-read them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Touched {
    #[default]
    Nothing,
    Lamps(Vec<i64>),
    Everything,
}

#[derive(Default)]
pub(super) struct LampIndex {
    lamps: RwLock<BTreeMap<i64, Lamp>>,
}

const LOAD_CHUNK: usize = 10_000;

impl LampIndex {
    pub fn load(connection: &Connection) -> StoreResult<Self> {
        let index = Self::default();
        index.reload(connection)?;
        Ok(index)
    }

    pub fn get(&self, id: i64) -> Option<Lamp> {
        self.lamps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// The lamps a scan without a box selects, in id order.
    pub fn scan(&self, query: &Scan) -> Vec<Lamp> {
        let lamps = self.lamps.read().unwrap_or_else(PoisonError::into_inner);
        let start = query.after_id.saturating_add(1);
        lamps
            .range(start..)
            .map(|(_, lamp)| lamp)
            .filter(|lamp| query.status.admits(lamp.status))
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// The lamps with these ids (ascending) that the scan's status admits, up to its limit.
    pub fn pick(&self, ids: &[i64], query: &Scan) -> Vec<Lamp> {
        let lamps = self.lamps.read().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .filter_map(|id| lamps.get(id))
            .filter(|lamp| query.status.admits(lamp.status))
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// Brings the index in line with a committed change, reading through `connection`.
    pub fn apply(&self, connection: &Connection, touched: &Touched) -> StoreResult<()> {
        match touched {
            Touched::Nothing => Ok(()),
            Touched::Everything => self.reload(connection),
            Touched::Lamps(ids) => {
                let mut fresh = Vec::with_capacity(ids.len());
                for &id in ids {
                    match fetch::<Lamp>(connection, id) {
                        Ok(lamp) => fresh.push((id, Some(lamp))),
                        Err(StoreError::NotFound { .. }) => fresh.push((id, None)),
                        Err(other) => return Err(other),
                    }
                }
                let mut lamps = self.lamps.write().unwrap_or_else(PoisonError::into_inner);
                for (id, lamp) in fresh {
                    match lamp {
                        Some(lamp) => lamps.insert(id, lamp),
                        None => lamps.remove(&id),
                    };
                }
                Ok(())
            }
        }
    }

    fn reload(&self, connection: &Connection) -> StoreResult<()> {
        // Read into a sorted list first: a map built from sorted entries in one go packs its
        // nodes full, where inserting in id order leaves each about half empty (at 1,000,000
        // lamps that was a few hundred MiB).
        let mut all = Vec::new();
        let mut query = Scan {
            after_id: 0,
            limit: LOAD_CHUNK,
            status: StatusFilter::All,
            area: None,
        };
        // One copy of each type's name for all its lamps, shared chunk by chunk so the copies
        // read from the rows are freed (and their memory reused) as the load goes.
        let mut names: HashMap<i64, Arc<str>> = HashMap::new();
        loop {
            let chunk: Vec<Lamp> = scan(connection, &query)?;
            let Some(last) = chunk.last() else { break };
            query.after_id = last.id;
            all.extend(chunk.into_iter().map(|mut lamp| {
                let shared = names
                    .entry(lamp.lamp_type.id)
                    .or_insert_with(|| lamp.lamp_type.name.clone());
                lamp.lamp_type.name = shared.clone();
                (lamp.id, lamp)
            }));
        }
        *self.lamps.write().unwrap_or_else(PoisonError::into_inner) = BTreeMap::from_iter(all);
        Ok(())
    }
}
