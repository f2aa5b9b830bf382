//! Signing keys, their private halves sealed by the core before they reach the store. New keys
//! arrive through [`Store::commit`](gatehouse_core::Store::commit), which tells the other nodes.

use gatehouse_core::{StoreError, StoredKey};

use crate::rows::KeyRow;
use crate::{SqlStore, backend_error};

impl SqlStore {
    pub(crate) async fn load_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, sealed_private_key, public_jwk, created_at, activates_at, retired_at \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
