//! Consents: what each person has allowed each client, one row per pair, replaced when given
//! again. Withdrawing one ends sessions, so it is a [`Write`](gatehouse_core::Write), in `writes`.

use gatehouse_core::{Consent, StoreError};

use crate::rows::ConsentRow;
use crate::{SqlStore, backend_error};

impl SqlStore {
    pub(crate) async fn load_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        let row: Option<ConsentRow> = sqlx::query_as(
            "SELECT user_id, client_id, scope, granted_at FROM consents \
             WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn store_consent(&self, c: &Consent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) \
             DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .bind(c.scope.to_string())
        .bind(c.granted_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    pub(crate) async fn load_consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<ConsentRow> = sqlx::query_as(
            "SELECT user_id, client_id, scope, granted_at FROM consents \
             WHERE user_id = $1 ORDER BY client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
