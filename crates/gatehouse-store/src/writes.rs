//! [`Store::commit`](gatehouse_core::Store::commit): the writes that change whether a token is
//! valid, each stored in one transaction with the change-log entries it implies.

use gatehouse_core::{Committed, StoreError, Write, WriteEffect};
use sqlx::{Any, Transaction};

use crate::cutoffs::{
    and_end_sessions, cut_off, cut_off_at, cut_off_holders, deleted_at, forward_not_before,
};
use crate::roles::replace_roles;
use crate::rows::ClientRow;
use crate::{Backend, SqlStore, Subject, backend_error, role_conflict};

/// The PostgreSQL channel that wakes other nodes' change-log readers.
macro_rules! change_channel {
    () => {
        "gatehouse_changes"
    };
}
pub(crate) const CHANGE_CHANNEL: &str = change_channel!();

impl SqlStore {
    pub(crate) async fn commit_writes(&self, writes: &[Write]) -> Result<Committed, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sessions_ended = 0;
        let mut changes = Vec::new();
        for write in writes {
            let Some(effect) = apply(&mut tx, write).await? else {
                tx.rollback().await.map_err(backend_error)?;
                return Ok(Committed::Missing);
            };
            sessions_ended += effect.ended_sessions.len() as u64;
            changes.extend(write.changes(&effect));
        }
        let now = gatehouse_core::Clock::now(&gatehouse_core::SystemClock);
        let mut logged = false;
        for change in changes {
            sqlx::query(
                "INSERT INTO change_log (at, kind, subject, until) VALUES ($1, $2, $3, $4)",
            )
            .bind(now)
            .bind(change.kind.as_str())
            .bind(change.subject)
            .bind(change.until)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
            logged = true;
        }
        if logged && self.backend == Backend::Postgres {
            // Delivered at commit, so a woken reader finds the rows.
            sqlx::query(concat!("NOTIFY ", change_channel!()))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)?;
        if logged {
            self.changed.wake();
        }
        Ok(Committed::Done { sessions_ended })
    }

    /// A transaction that will write. SQLite takes its write lock up front, so concurrent writers
    /// queue instead of failing when a deferred transaction would upgrade its lock.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(backend_error)
    }
}

/// The effect of an update that must find its row: `None` when it did not.
fn found(rows_affected: u64) -> Option<WriteEffect> {
    (rows_affected > 0).then(WriteEffect::default)
}

/// The effect of a write that may find nothing left to change.
fn changed(rows_affected: u64) -> Option<WriteEffect> {
    Some(WriteEffect {
        changed_nothing: rows_affected == 0,
        ..WriteEffect::default()
    })
}

/// Applies one write; `None` when the row it names does not exist.
async fn apply(
    tx: &mut Transaction<'static, Any>,
    write: &Write,
) -> Result<Option<WriteEffect>, StoreError> {
    let affected = match write {
        Write::UpdateClient { client, cutoff } => {
            let row = ClientRow::from(client);
            let sql = match cutoff {
                None => {
                    "UPDATE clients SET name = $2, auth_method = $3, grant_types = $4, \
                     scopes = $5, redirect_uris = $6, post_logout_redirect_uris = $7, \
                     skip_consent = $8, updated_at = $9 WHERE id = $1 RETURNING not_before"
                }
                Some(_) => concat!(
                    "UPDATE clients SET ",
                    forward_not_before!(),
                    ", name = $3, auth_method = $4, grant_types = $5, scopes = $6, \
                     redirect_uris = $7, post_logout_redirect_uris = $8, skip_consent = $9, \
                     updated_at = $10 WHERE id = $1 RETURNING not_before"
                ),
            };
            let mut query = sqlx::query_scalar(sql).bind(&client.id);
            if let Some(at) = cutoff {
                query = query.bind(*at);
            }
            let stored: Option<i64> = query
                .bind(row.name)
                .bind(row.auth_method)
                .bind(row.grant_types)
                .bind(row.scopes)
                .bind(row.redirect_uris)
                .bind(row.post_logout_redirect_uris)
                .bind(row.skip_consent)
                .bind(row.updated_at)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend_error)?;
            if stored.is_some() {
                replace_roles(tx, Subject::Client, &client.id, &client.roles).await?;
            }
            return Ok(stored.map(cut_off_at));
        }
        Write::BlockClient {
            id,
            not_before,
            now,
            ..
        } => return cut_off(tx, Subject::Client, id, *not_before, *now, true).await,
        Write::UnblockClient { id, now } => {
            sqlx::query("UPDATE clients SET blocked_at = NULL, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(*now)
                .execute(&mut **tx)
                .await
        }
        Write::SetClientSecret(c) => {
            sqlx::query(
                "UPDATE clients SET secret_hash = $2, previous_secret_hash = $3, \
                 previous_secret_expires_at = $4, updated_at = $5 WHERE id = $1",
            )
            .bind(&c.id)
            .bind(&c.secret_hash)
            .bind(&c.previous_secret_hash)
            .bind(c.previous_secret_expires_at)
            .bind(c.updated_at)
            .execute(&mut **tx)
            .await
        }
        Write::CutOffClient {
            id,
            not_before,
            now,
            ..
        } => return cut_off(tx, Subject::Client, id, *not_before, *now, false).await,
        Write::DeleteClient { id, cutoff } => {
            let stored: Option<i64> =
                sqlx::query_scalar("DELETE FROM clients WHERE id = $1 RETURNING not_before")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(backend_error)?;
            return Ok(stored.map(|stored| deleted_at(stored, *cutoff)));
        }
        Write::SetUserRoles {
            id,
            roles,
            cutoff,
            now,
        } => {
            let sql = match cutoff {
                None => "UPDATE users SET updated_at = $2 WHERE id = $1 RETURNING not_before",
                Some(_) => concat!(
                    "UPDATE users SET ",
                    forward_not_before!(),
                    ", updated_at = $3 WHERE id = $1 RETURNING not_before"
                ),
            };
            let mut query = sqlx::query_scalar(sql).bind(id);
            if let Some(at) = cutoff {
                query = query.bind(*at);
            }
            let stored: Option<i64> = query
                .bind(*now)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend_error)?;
            if stored.is_some() {
                replace_roles(tx, Subject::User, id, roles).await?;
            }
            return Ok(stored.map(cut_off_at));
        }
        Write::BlockUser {
            id,
            not_before,
            now,
            ..
        } => return cut_off(tx, Subject::User, id, *not_before, *now, true).await,
        Write::UnblockUser { id, now } => {
            sqlx::query("UPDATE users SET blocked_at = NULL, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(*now)
                .execute(&mut **tx)
                .await
        }
        Write::SetUserPassword {
            id,
            password_hash,
            not_before,
            now,
            ..
        } => {
            let stored: Option<i64> = sqlx::query_scalar(concat!(
                "UPDATE users SET ",
                forward_not_before!(),
                ", password_hash = $3, updated_at = $4 WHERE id = $1 RETURNING not_before"
            ))
            .bind(id)
            .bind(*not_before)
            .bind(password_hash)
            .bind(*now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend_error)?;
            return and_end_sessions(tx, stored, Subject::User, id, *now).await;
        }
        Write::CutOffUser {
            id,
            not_before,
            now,
            ..
        } => return cut_off(tx, Subject::User, id, *not_before, *now, false).await,
        Write::DeleteUser { id, cutoff } => {
            let stored: Option<i64> =
                sqlx::query_scalar("DELETE FROM users WHERE id = $1 RETURNING not_before")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(backend_error)?;
            return Ok(stored.map(|stored| deleted_at(stored, *cutoff)));
        }
        Write::RevokeSession { id, now, .. } => {
            let done = sqlx::query(
                "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(*now)
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
            return Ok(changed(done.rows_affected()));
        }
        Write::RevokeAccessToken(r) => {
            let done = sqlx::query(
                "INSERT INTO revoked_tokens (jti, subject, client_id, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&r.jti)
            .bind(&r.subject)
            .bind(&r.client_id)
            .bind(r.expires_at)
            .bind(r.revoked_at)
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
            return Ok(changed(done.rows_affected()));
        }
        Write::EndBrowserSession { id, now, .. } => {
            let ended = sqlx::query(
                "UPDATE browser_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(id)
            .bind(*now)
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?
            .rows_affected();
            // Even when it had ended already (or was purged): a code redeemed meanwhile may have
            // started a family from it.
            let ended_sessions: Vec<String> = sqlx::query_scalar(
                "UPDATE refresh_families SET revoked_at = $2 WHERE browser_session_id = $1 \
                 AND revoked_at IS NULL RETURNING id",
            )
            .bind(id)
            .bind(*now)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend_error)?;
            return Ok(Some(WriteEffect {
                changed_nothing: ended == 0 && ended_sessions.is_empty(),
                ended_sessions,
                ..WriteEffect::default()
            }));
        }
        Write::RevokeConsent {
            user_id,
            client_id,
            now,
            ..
        } => {
            let deleted = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?
                .rows_affected();
            // Every session of theirs with the client, however it began: what was allowed is gone.
            let ended_sessions: Vec<String> = sqlx::query_scalar(
                "UPDATE refresh_families SET revoked_at = $3 WHERE user_id = $1 \
                 AND client_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(*now)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend_error)?;
            return Ok(Some(WriteEffect {
                changed_nothing: deleted == 0 && ended_sessions.is_empty(),
                ended_sessions,
                ..WriteEffect::default()
            }));
        }
        Write::AddSigningKey {
            key,
            retire_others_at,
        } => {
            sqlx::query(
                "INSERT INTO signing_keys \
                 (kid, alg, sealed_private_key, public_jwk, created_at, activates_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.sealed_private_key)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .bind(key.activates_at)
            .bind(key.retired_at)
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
            if let Some(retired_at) = retire_others_at {
                sqlx::query(
                    "UPDATE signing_keys SET retired_at = $2 \
                     WHERE kid <> $1 AND retired_at IS NULL",
                )
                .bind(&key.kid)
                .bind(*retired_at)
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
            }
            return Ok(Some(WriteEffect::default()));
        }
        Write::InsertRole(role) => {
            sqlx::query("INSERT INTO roles (name, description, scopes) VALUES ($1, $2, $3)")
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.scopes.to_string())
                .execute(&mut **tx)
                .await
                .map_err(|e| match backend_error(e) {
                    StoreError::Conflict(_) => StoreError::Conflict("that role exists".into()),
                    other => other,
                })?;
            return Ok(Some(WriteEffect::default()));
        }
        Write::UpdateRole { role, cutoff } => {
            let updated =
                sqlx::query("UPDATE roles SET description = $2, scopes = $3 WHERE name = $1")
                    .bind(&role.name)
                    .bind(&role.description)
                    .bind(role.scopes.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
            let Some(mut effect) = found(updated) else {
                return Ok(None);
            };
            if let Some(at) = cutoff {
                effect.cut_off_subjects = cut_off_holders(tx, &role.name, *at).await?;
            }
            return Ok(Some(effect));
        }
        Write::DeleteRole(name) => {
            // The core refuses to delete a held role; the foreign keys refuse it here too, for a
            // role given to someone after the core looked.
            let deleted = sqlx::query("DELETE FROM roles WHERE name = $1")
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(role_conflict("the role is still held by users or clients"))?;
            return Ok(found(deleted.rows_affected()));
        }
    };
    Ok(found(affected.map_err(backend_error)?.rows_affected()))
}
