//! Browser sessions: browsers signed in to the hosted pages, known by the hash of their cookie.
//! Ending one (and the refresh families started from it) is a [`Write`](gatehouse_core::Write),
//! in `writes`; what is here only stores, finds and touches them.

use gatehouse_core::{BrowserSession, StoreError};

use crate::rows::BrowserSessionRow;
use crate::{SqlStore, backend_error, taken};

/// A browser session row (a macro, so queries stay `&'static str`).
macro_rules! browser_session_columns {
    () => {
        "id, secret_hash, user_id, auth_time, created_at, last_seen_at, expires_at, ended_at, ip, \
         user_agent"
    };
}

impl SqlStore {
    pub(crate) async fn store_new_browser_session(
        &self,
        b: &BrowserSession,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO browser_sessions (",
            browser_session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&b.id)
        .bind(&b.secret_hash)
        .bind(&b.user_id)
        .bind(b.auth_time)
        .bind(b.created_at)
        .bind(b.last_seen_at)
        .bind(b.expires_at)
        .bind(b.ended_at)
        .bind(&b.ip)
        .bind(&b.user_agent)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(taken("that browser session id or secret is taken"))
    }

    pub(crate) async fn load_browser_session(
        &self,
        secret_hash: &str,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let row: Option<BrowserSessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            browser_session_columns!(),
            " FROM browser_sessions WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    pub(crate) async fn touch_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        // Only forward: of concurrent requests from one browser, the one stored last need not be
        // the one seen last. (And a browser seen again within the second writes nothing.)
        sqlx::query(
            "UPDATE browser_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    pub(crate) async fn load_live_browser_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        let rows: Vec<BrowserSessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            browser_session_columns!(),
            " FROM browser_sessions \
              WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 \
              ORDER BY created_at DESC, id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
