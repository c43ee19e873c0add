//! Sessions (token hashes with an expiry, ended with the user's password or account) and the
//! audit trail.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, params};

use super::rows::{Stored, fetch, millis};
use super::{SqliteStore, db_error};
use crate::domain::inventory::User;
use crate::store::{AuditEntry, AuditQuery, NewAuditEntry, StoreResult};

fn instant(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl SqliteStore {
    pub(super) fn credentials_impl(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        self.read(|c| {
            let found: Option<(i64, String)> = c
                .prepare_cached("SELECT id, password_hash FROM users WHERE username = ?1")
                .map_err(db_error)?
                .query_row([username], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(db_error)?;
            match found {
                Some((id, hash)) => Ok(Some((fetch::<User>(c, id)?, hash))),
                None => Ok(None),
            }
        })
    }

    pub(super) fn open_session_impl(
        &self,
        user_id: i64,
        token_hash: Vec<u8>,
        expires_at: DateTime<Utc>,
        keep: usize,
    ) -> StoreResult<Vec<Vec<u8>>> {
        self.write(move |c| {
            let now = millis(Utc::now());
            c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")
                .map_err(db_error)?
                .execute([now])
                .map_err(db_error)?;
            c.prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db_error)?
            .execute(params![token_hash, user_id, now, millis(expires_at)])
            .map_err(db_error)?;
            // The oldest first, past the newest `keep` (this one is the newest).
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let ended: Vec<Vec<u8>> = c
                .prepare_cached(
                    "SELECT token_hash FROM sessions WHERE user_id = ?1 \
                     ORDER BY created_at DESC, expires_at DESC LIMIT -1 OFFSET ?2",
                )
                .map_err(db_error)?
                .query_map(params![user_id, keep], |row| row.get(0))
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            for hash in &ended {
                c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
                    .map_err(db_error)?
                    .execute([hash])
                    .map_err(db_error)?;
            }
            Ok(ended)
        })
    }

    pub(super) fn session_impl(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(User, DateTime<Utc>)>> {
        self.read(|c| {
            let found: Option<(i64, i64)> = c
                .prepare_cached("SELECT user_id, expires_at FROM sessions WHERE token_hash = ?1")
                .map_err(db_error)?
                .query_row([token_hash], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(db_error)?;
            match found {
                Some((user_id, expires)) => {
                    Ok(Some((fetch::<User>(c, user_id)?, instant(expires))))
                }
                None => Ok(None),
            }
        })
    }

    pub(super) fn close_session_impl(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
                .map_err(db_error)?;
            Ok(())
        })
    }

    pub(super) fn set_password_impl(&self, user_id: i64, password_hash: String) -> StoreResult<()> {
        self.write(move |c| {
            fetch::<User>(c, user_id)?;
            c.execute(
                &format!(
                    "UPDATE {} SET password_hash = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
                    User::TABLE
                ),
                params![user_id, password_hash, millis(Utc::now())],
            )
            .map_err(db_error)?;
            end_sessions(c, user_id)
        })
    }

    pub(super) fn record_audit_impl(&self, entry: NewAuditEntry) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit_log (at, actor, role, peer, action, entity, entity_id, changes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db_error)?
            .execute(params![
                millis(entry.at),
                entry.actor,
                entry.role,
                entry.peer,
                entry.action,
                entry.entity,
                entry.entity_id,
                entry.changes
            ])
            .map_err(db_error)?;
            Ok(())
        })
    }

    pub(super) fn audit_log_impl(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT id, at, actor, role, peer, action, entity, entity_id, changes FROM audit_log \
                     WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2) \
                     AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR entity = ?4) \
                     AND (?5 IS NULL OR entity_id = ?5) \
                     ORDER BY at DESC, id DESC LIMIT ?6",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map(
                    params![
                        query.from.map(millis),
                        query.to.map(millis),
                        query.actor,
                        query.entity,
                        query.entity_id,
                        i64::try_from(query.limit).unwrap_or(i64::MAX)
                    ],
                    |row| {
                        Ok(AuditEntry {
                            id: row.get(0)?,
                            entry: NewAuditEntry {
                                at: instant(row.get(1)?),
                                actor: row.get(2)?,
                                role: row.get(3)?,
                                peer: row.get(4)?,
                                action: row.get(5)?,
                                entity: row.get(6)?,
                                entity_id: row.get(7)?,
                                changes: row.get(8)?,
                            },
                        })
                    },
                )
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }
}

/// Ends every session of a user (a new password, a deleted account).
pub(super) fn end_sessions(c: &rusqlite::Connection, user_id: i64) -> StoreResult<()> {
    c.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")
        .map_err(db_error)?
        .execute([user_id])
        .map_err(db_error)?;
    Ok(())
}
