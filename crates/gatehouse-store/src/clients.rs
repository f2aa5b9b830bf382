//! Clients: the applications and machines that ask for tokens, loaded with the roles they hold.

use gatehouse_core::{Client, StoreError};

use crate::roles::{add_roles, held_roles};
use crate::rows::ClientRow;
use crate::{SqlStore, Subject, backend_error, taken};

/// A client row as loaded (a macro, so queries stay `&'static str`: sqlx refuses unaudited
/// dynamic SQL).
macro_rules! client_columns {
    () => {
        concat!(
            "id, name, secret_hash, auth_method, grant_types, scopes, registration_token_hash, \
             created_at, updated_at, blocked_at, not_before, previous_secret_hash, \
             previous_secret_expires_at, redirect_uris, post_logout_redirect_uris, skip_consent, ",
            held_roles!("client_roles", "client_id", "clients.id")
        )
    };
}

impl SqlStore {
    pub(crate) async fn load_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
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

    pub(crate) async fn load_clients_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Client>, StoreError> {
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

    /// The client and its roles in one transaction: both are stored or neither.
    pub(crate) async fn store_new_client(&self, c: &Client) -> Result<(), StoreError> {
        let row = ClientRow::from(c);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, auth_method, grant_types, scopes, \
             registration_token_hash, created_at, updated_at, blocked_at, not_before, \
             previous_secret_hash, previous_secret_expires_at, redirect_uris, \
             post_logout_redirect_uris, skip_consent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(row.id)
        .bind(row.name)
        .bind(row.secret_hash)
        .bind(row.auth_method)
        .bind(row.grant_types)
        .bind(row.scopes)
        .bind(row.registration_token_hash)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.blocked_at)
        .bind(row.not_before)
        .bind(row.previous_secret_hash)
        .bind(row.previous_secret_expires_at)
        .bind(row.redirect_uris)
        .bind(row.post_logout_redirect_uris)
        .bind(row.skip_consent)
        .execute(&mut *tx)
        .await
        .map_err(taken("that client id is taken"))?;
        add_roles(&mut tx, Subject::Client, &c.id, &c.roles).await?;
        tx.commit().await.map_err(backend_error)
    }
}
