//! Housekeeping: rows that no longer decide anything.

use gatehouse_core::StoreError;

use crate::{SqlStore, backend_error};

impl SqlStore {
    pub(crate) async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
    ) -> Result<u64, StoreError> {
        let tokens = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        // Their refresh tokens go with them (foreign key, ON DELETE CASCADE).
        let families = sqlx::query("DELETE FROM refresh_families WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        let codes = sqlx::query("DELETE FROM authorization_codes WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        // Families started from one keep its id (a plain column, no foreign key), so ending it
        // later still finds them.
        let browser_sessions =
            sqlx::query("DELETE FROM browser_sessions WHERE expires_at < $1 OR ended_at < $1")
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
        Ok(tokens.rows_affected()
            + families.rows_affected()
            + codes.rows_affected()
            + browser_sessions.rows_affected()
            + changes.rows_affected()
            + events)
    }
}
