//! Authorization codes: stored by hash with what they are bound to, and redeemed at most once.

use gatehouse_core::{AuthorizationCode, StoreError};

use crate::rows::CodeRow;
use crate::{SqlStore, backend_error, taken};

/// An authorization code row (a macro, so queries stay `&'static str`).
macro_rules! code_columns {
    () => {
        "hash, client_id, user_id, redirect_uri, code_challenge, nonce, scope, auth_time, \
         browser_session_id, created_at, expires_at, used_at, family_id"
    };
}

impl SqlStore {
    pub(crate) async fn store_new_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO authorization_codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&c.hash)
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.nonce)
        .bind(&c.scope)
        .bind(c.auth_time)
        .bind(&c.browser_session_id)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.used_at)
        .bind(&c.family_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(taken("that authorization code exists"))
    }

    pub(crate) async fn load_code(
        &self,
        hash: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let row: Option<CodeRow> = sqlx::query_as(concat!(
            "SELECT ",
            code_columns!(),
            " FROM authorization_codes WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(row.map(Into::into))
    }

    pub(crate) async fn redeem_code(
        &self,
        hash: &str,
        family_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // One conditional statement: of concurrent redemptions of one code, exactly one finds it
        // unused (PostgreSQL re-checks the condition on the row it waited for).
        let done = sqlx::query(
            "UPDATE authorization_codes SET used_at = $3, family_id = $2 \
             WHERE hash = $1 AND used_at IS NULL",
        )
        .bind(hash)
        .bind(family_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }
}
