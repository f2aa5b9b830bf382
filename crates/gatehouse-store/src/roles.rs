//! Roles, and who holds them: `user_roles` and `client_roles` join users and clients to the
//! roles they hold, in the order given (tokens list them in that order). Foreign keys keep a held
//! role from being deleted and drop a holder's rows with it.

use gatehouse_core::{Role, StoreError};
use sqlx::{Any, Transaction};

use crate::rows::RoleRow;
use crate::{SqlStore, Subject, backend_error, role_conflict};

/// A user's or client's `roles` as a row carries them: role names, space-separated, in the order
/// given. `$owner` is the holder's id column in the enclosing query.
macro_rules! held_roles {
    ($table:literal, $key:literal, $owner:literal) => {
        concat!(
            "COALESCE((SELECT string_agg(h.role, ' ' ORDER BY h.position) FROM ",
            $table,
            " h WHERE h.",
            $key,
            " = ",
            $owner,
            "), '') AS roles"
        )
    };
}
pub(crate) use held_roles;

/// Stores `roles` as the roles of a new user or client, inside its insert's transaction.
pub(crate) async fn add_roles(
    tx: &mut Transaction<'static, Any>,
    holder: Subject,
    id: &str,
    roles: &[String],
) -> Result<(), StoreError> {
    let sql = match holder {
        Subject::User => "INSERT INTO user_roles (user_id, role, position) VALUES ($1, $2, $3)",
        Subject::Client => {
            "INSERT INTO client_roles (client_id, role, position) VALUES ($1, $2, $3)"
        }
    };
    // A role named twice is held once, where it was first named.
    let mut held: Vec<&str> = Vec::with_capacity(roles.len());
    for role in roles {
        if held.contains(&role.as_str()) {
            continue;
        }
        sqlx::query(sql)
            .bind(id)
            .bind(role)
            .bind(held.len() as i64)
            .execute(&mut **tx)
            .await
            .map_err(role_conflict("a role it names does not exist"))?;
        held.push(role);
    }
    Ok(())
}

/// Replaces the roles of an existing user or client with `roles`. Called after updating the
/// holder's row in the same transaction: that row's lock keeps two replacements from interleaving.
pub(crate) async fn replace_roles(
    tx: &mut Transaction<'static, Any>,
    holder: Subject,
    id: &str,
    roles: &[String],
) -> Result<(), StoreError> {
    let sql = match holder {
        Subject::User => "DELETE FROM user_roles WHERE user_id = $1",
        Subject::Client => "DELETE FROM client_roles WHERE client_id = $1",
    };
    sqlx::query(sql)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend_error)?;
    add_roles(tx, holder, id, roles).await
}

impl SqlStore {
    pub(crate) async fn load_roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows: Vec<RoleRow> =
            sqlx::query_as("SELECT name, description, scopes FROM roles ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub(crate) async fn role_has_holders(&self, name: &str) -> Result<bool, StoreError> {
        // Each side is an index seek on `role`.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM user_roles WHERE role = $1 \
             UNION ALL SELECT 1 FROM client_roles WHERE role = $1 LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(found.is_some())
    }
}
