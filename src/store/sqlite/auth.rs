//! Users, sessions and the audit trail in SQLite (`AuthStore`): sessions are token hashes
//! with an expiry, ended with the user's password or account.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::inventory::{prune, soft_delete, unique};
use super::rows::{Stored, fetch, from_millis, millis, scan};
use super::{SqliteStore, db_error};
use crate::domain::inventory::{EntityKind, EntityStatus, NewUser, User, UserPatch};
use crate::store::check_version;
use crate::store::{AuditEntry, AuditQuery, AuthStore, NewAuditEntry, Scan, StoreResult};

impl AuthStore for SqliteStore {
    fn user(&self, id: i64) -> StoreResult<User> {
        self.read(|c| fetch(c, id))
    }

    fn users(&self, query: &Scan) -> StoreResult<Vec<User>> {
        let query = Scan {
            area: None,
            ..*query
        };
        self.read(|c| scan(c, &query))
    }

    fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.write(move |c| {
            let now = millis(Utc::now());
            c.execute(
                "INSERT INTO users (username, display_name, role, password_hash, status, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                params![new.username, new.display_name, new.role.as_str(), new.password_hash, new.status.as_str(), now],
            )
            .map_err(|e| unique(e, EntityKind::User, "username", &new.username))?;
            fetch(c, c.last_insert_rowid())
        })
    }

    fn update_user(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: UserPatch,
    ) -> StoreResult<User> {
        self.write(move |c| {
            let mut record: User = fetch(c, id)?;
            check_version(&record, expected_version)?;
            let new_hash = patch.apply_to(&mut record);
            c.execute(
                "UPDATE users SET display_name = ?2, role = ?3, status = ?4, password_hash = coalesce(?5, password_hash), \
                 version = version + 1, updated_at = ?6 WHERE id = ?1",
                params![id, record.display_name, record.role.as_str(), record.status.as_str(), new_hash, millis(Utc::now())],
            )
            .map_err(db_error)?;
            // A new password or a deactivated account ends every session at once.
            if new_hash.is_some() || record.status != EntityStatus::Active {
                super::auth::end_sessions(c, id)?;
            }
            fetch(c, id)
        })
    }

    fn delete_user(&self, id: i64) -> StoreResult<User> {
        self.write(move |c| {
            super::auth::end_sessions(c, id)?;
            soft_delete(c, id)
        })
    }

    fn prune_user(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| prune::<User>(c, id, &[]))
    }

    fn credentials(&self, username: &str) -> StoreResult<Option<(User, String)>> {
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

    fn open_session(
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
            // Sessions opened in the same millisecond still have an order: each is later
            // than the user's newest, so the oldest are the ones ended.
            c.prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, \
                 max(?3, coalesce((SELECT max(created_at) + 1 FROM sessions WHERE user_id = ?2), ?3)), ?4)",
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

    fn session(&self, token_hash: &[u8]) -> StoreResult<Option<(User, DateTime<Utc>)>> {
        self.read(|c| {
            let found: Option<(i64, i64)> = c
                .prepare_cached("SELECT user_id, expires_at FROM sessions WHERE token_hash = ?1")
                .map_err(db_error)?
                .query_row([token_hash], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(db_error)?;
            match found {
                Some((user_id, expires)) => {
                    Ok(Some((fetch::<User>(c, user_id)?, from_millis(expires))))
                }
                None => Ok(None),
            }
        })
    }

    fn close_session(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn set_password(&self, user_id: i64, password_hash: String) -> StoreResult<()> {
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

    fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<()> {
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

    fn audit_log(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
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
                                at: from_millis(row.get(1)?),
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
