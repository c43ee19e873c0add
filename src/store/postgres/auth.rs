//! Users, sessions and the audit trail in PostgreSQL (`AuthStore`): sessions are token hashes
//! with an expiry, ended with the user's password or account.

use super::Conn as Client;
use chrono::{DateTime, Utc};

use super::inventory::{locked, prune, soft_delete, unique};
use super::rows::{Stored, fetch, from_millis, get, millis, scan};
use super::{PgStore, db_error};
use crate::domain::inventory::{EntityKind, EntityStatus, NewUser, User, UserPatch};
use crate::store::check_version;
use crate::store::{AuditEntry, AuditQuery, AuthStore, NewAuditEntry, Scan, StoreResult};

impl AuthStore for PgStore {
    fn user(&self, id: i64) -> StoreResult<User> {
        self.read(move |c| async move { fetch(&c, id).await })
    }

    fn users(&self, query: &Scan) -> StoreResult<Vec<User>> {
        let query = Scan {
            area: None,
            ..*query
        };
        self.read(move |c| async move { scan(&c, &query).await })
    }

    fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.write(move |c| async move {
            let row = c
                .query_one(
                    "INSERT INTO users (username, display_name, role, password_hash, status, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id",
                    &[&new.username, &new.display_name, &new.role.as_str(), &new.password_hash, &new.status.as_str(), &millis(Utc::now())],
                )
                .await
                .map_err(|e| unique(e, EntityKind::User, "username", &new.username))?;
            fetch(&c, get(&row, 0)?).await
        })
    }

    fn update_user(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: UserPatch,
    ) -> StoreResult<User> {
        self.write(move |c| async move {
            let mut record: User = locked(&c, id).await?;
            check_version(&record, expected_version)?;
            let new_hash = patch.apply_to(&mut record);
            c.execute(
                "UPDATE users SET display_name = $2, role = $3, status = $4, password_hash = coalesce($5, password_hash), \
                 version = version + 1, updated_at = $6 WHERE id = $1",
                &[&id, &record.display_name, &record.role.as_str(), &record.status.as_str(), &new_hash, &millis(Utc::now())],
            )
            .await
            .map_err(db_error)?;
            // A new password or a deactivated account ends every session at once.
            if new_hash.is_some() || record.status != EntityStatus::Active {
                end_sessions(&c, id).await?;
            }
            fetch(&c, id).await
        })
    }

    fn delete_user(&self, id: i64) -> StoreResult<User> {
        self.write(move |c| async move {
            end_sessions(&c, id).await?;
            soft_delete(&c, id).await
        })
    }

    fn prune_user(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| async move { prune::<User>(&c, id, &[]).await })
    }

    fn credentials(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let username = username.to_owned();
        self.read(move |c| async move {
            let found = c
                .query_opt(
                    "SELECT id, password_hash FROM users WHERE username = $1",
                    &[&username],
                )
                .await
                .map_err(db_error)?;
            match found {
                Some(row) => Ok(Some((
                    fetch::<User>(&c, get(&row, 0)?).await?,
                    get(&row, 1)?,
                ))),
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
        self.write(move |c| async move {
            let now = millis(Utc::now());
            c.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
                .await
                .map_err(db_error)?;
            // The user's row is locked so sessions opened at once on several servers take
            // their turn; each is later than the user's newest, so the oldest are ended.
            locked::<User>(&c, user_id).await?;
            c.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, \
                 GREATEST($3, coalesce((SELECT max(created_at) + 1 FROM sessions WHERE user_id = $2), $3)), $4)",
                &[&token_hash, &user_id, &now, &millis(expires_at)],
            )
            .await
            .map_err(db_error)?;
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let ended: Vec<Vec<u8>> = c
                .query(
                    "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions WHERE user_id = $1 \
                     ORDER BY created_at DESC, expires_at DESC OFFSET $2) RETURNING token_hash",
                    &[&user_id, &keep],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| get(row, 0))
                .collect::<StoreResult<_>>()?;
            Ok(ended)
        })
    }

    fn session(&self, token_hash: &[u8]) -> StoreResult<Option<(User, DateTime<Utc>)>> {
        let token_hash = token_hash.to_vec();
        self.read(move |c| async move {
            let found = c
                .query_opt(
                    "SELECT user_id, expires_at FROM sessions WHERE token_hash = $1",
                    &[&token_hash],
                )
                .await
                .map_err(db_error)?;
            match found {
                Some(row) => Ok(Some((
                    fetch::<User>(&c, get(&row, 0)?).await?,
                    from_millis(get(&row, 1)?),
                ))),
                None => Ok(None),
            }
        })
    }

    fn close_session(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        self.write(move |c| async move {
            c.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn set_password(&self, user_id: i64, password_hash: String) -> StoreResult<()> {
        self.write(move |c| async move {
            locked::<User>(&c, user_id).await?;
            c.execute(
                &format!(
                    "UPDATE {} SET password_hash = $2, version = version + 1, updated_at = $3 WHERE id = $1",
                    User::TABLE
                ),
                &[&user_id, &password_hash, &millis(Utc::now())],
            )
            .await
            .map_err(db_error)?;
            end_sessions(&c, user_id).await
        })
    }

    fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<()> {
        self.write(move |c| async move {
            c.execute(
                "INSERT INTO audit_log (at, actor, role, peer, action, entity, entity_id, changes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &millis(entry.at),
                    &entry.actor,
                    &entry.role,
                    &entry.peer,
                    &entry.action,
                    &entry.entity,
                    &entry.entity_id,
                    &entry.changes,
                ],
            )
            .await
            .map_err(db_error)?;
            Ok(())
        })
    }

    fn audit_log(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let query = query.clone();
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT id, at, actor, role, peer, action, entity, entity_id, changes FROM audit_log \
                     WHERE ($1::bigint IS NULL OR at >= $1) AND ($2::bigint IS NULL OR at < $2) \
                     AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR entity = $4) \
                     AND ($5::bigint IS NULL OR entity_id = $5) \
                     ORDER BY at DESC, id DESC LIMIT $6",
                    &[
                        &query.from.map(millis),
                        &query.to.map(millis),
                        &query.actor,
                        &query.entity,
                        &query.entity_id,
                        &i64::try_from(query.limit).unwrap_or(i64::MAX),
                    ],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(AuditEntry {
                        id: get(row, 0)?,
                        entry: NewAuditEntry {
                            at: from_millis(get(row, 1)?),
                            actor: get(row, 2)?,
                            role: get(row, 3)?,
                            peer: get(row, 4)?,
                            action: get(row, 5)?,
                            entity: get(row, 6)?,
                            entity_id: get(row, 7)?,
                            changes: get(row, 8)?,
                        },
                    })
                })
                .collect()
        })
    }
}

/// Ends every session of a user (a new password, a deleted account).
async fn end_sessions(c: &Client, user_id: i64) -> StoreResult<()> {
    c.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])
        .await
        .map_err(db_error)?;
    Ok(())
}
