//! Sign-in sessions: refresh families, their chains of refresh tokens, and the deny list of
//! access tokens revoked before they expire.

use gatehouse_core::{FamilyFilter, RefreshFamily, RefreshTokenRecord, RotateOutcome, StoreError};
use sqlx::{Any, Transaction};

use crate::rows::{FamilyRow, TokenAndFamilyRow};
use crate::{Backend, SqlStore, backend_error};

/// A family row (a macro, so queries stay `&'static str`).
macro_rules! family_columns {
    () => {
        "id, user_id, client_id, scope, created_at, last_used_at, expires_at, revoked_at, ip, \
         user_agent, browser_session_id"
    };
}

impl SqlStore {
    pub(crate) async fn load_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
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

    pub(crate) async fn load_families_after(
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

    pub(crate) async fn store_new_family(
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
        sqlx::query(concat!(
            "INSERT INTO refresh_families (",
            family_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
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
        .bind(&f.browser_session_id)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
        insert_token(&mut tx, first).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(true)
    }

    pub(crate) async fn load_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
        let row: Option<TokenAndFamilyRow> = sqlx::query_as(
            "SELECT t.hash, t.family_id, t.created_at AS token_created_at, \
             t.expires_at AS token_expires_at, t.rotated_at, f.user_id, f.client_id, f.scope, \
             f.created_at, f.last_used_at, f.expires_at, f.revoked_at, f.ip, f.user_agent, \
             f.browser_session_id \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    pub(crate) async fn rotate_token(
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

    pub(crate) async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(found.is_some())
    }
}

async fn insert_token(
    tx: &mut Transaction<'static, Any>,
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
