//! Persistence for Gatehouse: the [`Store`] trait of `gatehouse-core` on sqlx, over embedded SQLite
//! (the default, WAL mode, no set-up) or PostgreSQL (several nodes sharing one database).
//!
//! One implementation serves both backends through sqlx's `Any` driver: the SQL is written once in
//! the dialect they share (`$N` parameters, `RETURNING`, `ON CONFLICT`), with integer times and text
//! lists. Each backend keeps its own migrations. This crate must not know about HTTP or OAuth rules;
//! it stores and loads what the core hands it.

mod changes;
mod rows;
mod writes;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::{
    AuditEvent, Change, Client, Committed, EventFilter, FamilyFilter, RefreshFamily,
    RefreshTokenRecord, Role, RotateOutcome, Store, StoreError, StoredKey, User, Write,
};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use rows::{
    ClientRow, EventRow, FamilyRow, KeyRow, RoleRow, TokenAndFamilyRow, UserRow, join_list,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The sqlx-backed store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    changed: std::sync::Arc<changes::ChangeSignal>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database `gatehouse.db` in `dir`, in WAL mode.
    pub async fn open_sqlite_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join("gatehouse.db");
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unavailable(
                "the database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                options
                    // SQLite writes one at a time; a few connections serve the concurrent readers.
                    .max_connections(8)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                                 PRAGMA synchronous = NORMAL;",
                            )
                            .await
                            .map(|_| ())
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => options.max_connections(16).connect(url).await,
        }
        .map_err(|e| StoreError::Unavailable(redact(&e.to_string(), url)))?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(backend_error)?;
        }
        let listen_url = (backend == Backend::Postgres).then(|| url.to_owned());
        let store = Self {
            pool,
            backend,
            changed: changes::ChangeSignal::new(listen_url),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        };
        result.map_err(|e| StoreError::Backend(format!("migrations failed: {e}")))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A `LIKE` pattern (escape `\\`) matching a space-separated role list that holds `role` as a
/// whole word, with `LIKE`'s wildcards in the name escaped.
fn role_pattern(role: &str) -> String {
    format!(
        "% {} %",
        role.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Connection errors can echo the URL; never let a password reach a log.
fn redact(message: &str, url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, _)) if credentials.contains(':') => message.replace(credentials, "***"),
        _ => message.to_owned(),
    }
}

fn backend_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a record with that key exists".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Column lists as macros, so queries stay `&'static str` (sqlx refuses unaudited dynamic SQL).
macro_rules! client_columns {
    () => {
        "id, name, secret_hash, auth_method, grant_types, scopes, roles, \
         registration_token_hash, created_at, updated_at, blocked_at, not_before, \
         previous_secret_hash, previous_secret_expires_at"
    };
}
macro_rules! family_columns {
    () => {
        "id, user_id, client_id, scope, created_at, last_used_at, expires_at, revoked_at, ip, \
         user_agent"
    };
}
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, roles, created_at, updated_at, blocked_at, not_before"
    };
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, sealed_private_key, public_jwk, created_at, activates_at, retired_at \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row: Option<ClientRow> = sqlx::query_as(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let row = ClientRow::from(c);
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(row.id)
        .bind(row.name)
        .bind(row.secret_hash)
        .bind(row.auth_method)
        .bind(row.grant_types)
        .bind(row.scopes)
        .bind(row.roles)
        .bind(row.registration_token_hash)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.blocked_at)
        .bind(row.not_before)
        .bind(row.previous_secret_hash)
        .bind(row.previous_secret_expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| match backend_error(e) {
            StoreError::Conflict(_) => StoreError::Conflict("that client id is taken".into()),
            other => other,
        })
    }

    async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, StoreError> {
        let rows: Vec<ClientRow> = sqlx::query_as(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn list_users(&self, after: &str, limit: u32) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    async fn insert_user(&self, u: &User) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(join_list(&u.roles))
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.blocked_at)
        .bind(u.not_before)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| match backend_error(e) {
            StoreError::Conflict(_) => StoreError::Conflict("that username is taken".into()),
            other => other,
        })
    }

    async fn roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows: Vec<RoleRow> =
            sqlx::query_as("SELECT name, description, scopes FROM roles ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn role_in_use(&self, name: &str) -> Result<bool, StoreError> {
        let pattern = role_pattern(name);
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users WHERE (' ' || roles || ' ') LIKE $1 ESCAPE '\\' \
             UNION ALL SELECT 1 FROM clients WHERE (' ' || roles || ' ') LIKE $1 ESCAPE '\\' \
             LIMIT 1",
        )
        .bind(pattern)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(found.is_some())
    }

    async fn family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        let row: Option<FamilyRow> = sqlx::query_as(concat!(
            "SELECT ",
            family_columns!(),
            " FROM refresh_families WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    async fn list_families(
        &self,
        filter: &FamilyFilter,
        after: &str,
        limit: u32,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        let rows: Vec<FamilyRow> = sqlx::query_as(concat!(
            "SELECT ",
            family_columns!(),
            " FROM refresh_families WHERE id > $1 \
              AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) \
              AND (CAST($3 AS TEXT) IS NULL OR client_id = $3) \
              ORDER BY id LIMIT $4"
        ))
        .bind(after)
        .bind(&filter.user_id)
        .bind(&filter.client_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_family(
        &self,
        f: &RefreshFamily,
        first: &RefreshTokenRecord,
        user_not_before: i64,
    ) -> Result<bool, StoreError> {
        // SQLite's write lock, or PostgreSQL's share lock on the user row, keeps a block or
        // cut-off from committing between this check and the insert; one that commits after
        // finds the new family and ends it.
        let mut tx = self.begin_write().await?;
        let lock = match self.backend {
            Backend::Sqlite => {
                "SELECT 1 FROM users WHERE id = $1 AND blocked_at IS NULL AND not_before <= $2"
            }
            Backend::Postgres => {
                "SELECT 1 FROM users WHERE id = $1 AND blocked_at IS NULL AND not_before <= $2 \
                 FOR SHARE"
            }
        };
        let usable: Option<i64> = sqlx::query_scalar(lock)
            .bind(&f.user_id)
            .bind(user_not_before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend_error)?;
        if usable.is_none() {
            tx.rollback().await.map_err(backend_error)?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, client_id, scope, created_at, last_used_at, \
             expires_at, revoked_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(&f.client_id)
        .bind(&f.scope)
        .bind(f.created_at)
        .bind(f.last_used_at)
        .bind(f.expires_at)
        .bind(f.revoked_at)
        .bind(&f.ip)
        .bind(&f.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
        insert_token(&mut tx, first).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(true)
    }

    async fn refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
        let row: Option<TokenAndFamilyRow> = sqlx::query_as(
            "SELECT t.hash, t.family_id, t.created_at AS token_created_at, \
             t.expires_at AS token_expires_at, t.rotated_at, f.user_id, f.client_id, f.scope, \
             f.created_at, f.last_used_at, f.expires_at, f.revoked_at, f.ip, f.user_agent \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: &RefreshTokenRecord,
        now: i64,
    ) -> Result<RotateOutcome, StoreError> {
        // The conditional update comes first: on SQLite it takes the write lock before any read
        // (no lock upgrade to deadlock on); on PostgreSQL it row-locks, so concurrent rotations
        // of one token queue here and all but the first see it already rotated.
        let mut tx = self.pool.begin().await.map_err(backend_error)?;
        if self.backend == Backend::Postgres {
            // Row-lock the family first: under READ COMMITTED the EXISTS below would not see a
            // revocation that commits meanwhile. (SQLite writes one at a time; no lock needed.)
            sqlx::query("SELECT id FROM refresh_families WHERE id = $1 FOR UPDATE")
                .bind(&successor.family_id)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
        }
        // Only while the family lives: a revocation racing this rotation wins.
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 AND rotated_at IS NULL \
             AND EXISTS (SELECT 1 FROM refresh_families f \
                         WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL)",
        )
        .bind(old_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(backend_error)?;
            return Ok(RotateOutcome::AlreadyRotated);
        }
        insert_token(&mut tx, successor).await?;
        sqlx::query("UPDATE refresh_families SET last_used_at = $2 WHERE id = $1")
            .bind(&successor.family_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)?;
        Ok(RotateOutcome::Rotated)
    }

    async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(found.is_some())
    }

    async fn purge_expired(&self, now: i64, audit_before: Option<i64>) -> Result<u64, StoreError> {
        let tokens = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        let families = sqlx::query("DELETE FROM refresh_families WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        // A day of changes is plenty for any node or gateway to catch up. The newest entry stays:
        // it tells a starting reader where the sequence stands.
        let changes = sqlx::query(
            "DELETE FROM change_log WHERE at < $1 AND seq < (SELECT MAX(seq) FROM change_log)",
        )
        .bind(now - 24 * 3600)
        .execute(&self.pool)
        .await
        .map_err(backend_error)?;
        let events = match audit_before {
            Some(before) => sqlx::query("DELETE FROM audit_events WHERE at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend_error)?
                .rows_affected(),
            None => 0,
        };
        Ok(tokens.rows_affected() + families.rows_affected() + changes.rows_affected() + events)
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(seq.unwrap_or(0))
    }

    async fn commit(&self, writes: &[Write]) -> Result<Committed, StoreError> {
        self.commit_writes(writes).await
    }

    async fn changes_between(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        self.read_changes_between(after, upto, limit).await
    }

    async fn changes_in(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        self.read_changes_in(seqs).await
    }

    async fn first_change_since(&self, at: i64) -> Result<Option<i64>, StoreError> {
        self.read_first_change_since(at).await
    }

    async fn change_notified(&self) {
        self.changed.wait().await;
    }

    async fn record_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, kind, subject, client_id, actor, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(e.at)
        .bind(&e.kind)
        .bind(&e.subject)
        .bind(&e.client_id)
        .bind(&e.actor)
        .bind(&e.ip)
        .bind(&e.detail)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let (before_at, before_id) = match before {
            Some((at, id)) => (Some(at), Some(id)),
            None => (None, None),
        };
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, kind, subject, client_id, actor, ip, detail FROM audit_events \
             WHERE (CAST($1 AS TEXT) IS NULL OR subject = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR kind = $2) \
               AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR at <= $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR at < $5 OR (at = $5 AND id < $6)) \
             ORDER BY at DESC, id DESC LIMIT $7",
        )
        .bind(&filter.subject)
        .bind(&filter.kind)
        .bind(filter.since)
        .bind(filter.until)
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, kind, subject, client_id, actor, ip, detail FROM audit_events \
             ORDER BY at DESC, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    t: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, created_at, expires_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.hash)
    .bind(&t.family_id)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.rotated_at)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_from_connection_errors() {
        let url = "postgres://app:hunter2@db:5432/x";
        let msg = format!("failed to connect to {url}");
        assert!(!redact(&msg, url).contains("hunter2"));
    }
}
