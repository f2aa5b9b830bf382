//! People: their accounts, loaded with the roles they hold.

use gatehouse_core::{StoreError, User};

use crate::roles::{add_roles, held_roles};
use crate::rows::UserRow;
use crate::{SqlStore, Subject, backend_error, taken};

/// A user row as loaded (a macro, so queries stay `&'static str`: sqlx refuses unaudited
/// dynamic SQL).
macro_rules! user_columns {
    () => {
        concat!(
            "id, username, email, password_hash, created_at, updated_at, blocked_at, not_before, ",
            held_roles!("user_roles", "user_id", "users.id")
        )
    };
}

impl SqlStore {
    pub(crate) async fn load_user(&self, id: &str) -> Result<Option<User>, StoreError> {
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

    pub(crate) async fn load_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<User>, StoreError> {
        // The unique index on `lower(username)` serves this lookup.
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

    pub(crate) async fn load_users_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
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

    /// The user and their roles in one transaction: both are stored or neither.
    pub(crate) async fn store_new_user(&self, u: &User) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at, \
             blocked_at, not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.blocked_at)
        .bind(u.not_before)
        .execute(&mut *tx)
        .await
        .map_err(taken("that username is taken"))?;
        add_roles(&mut tx, Subject::User, &u.id, &u.roles).await?;
        tx.commit().await.map_err(backend_error)
    }
}
