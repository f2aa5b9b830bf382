//! The signing keys: loaded from the store (sealed under the key-encryption key), created on first
//! start, published as a JWKS, and used to sign and verify access tokens.

use std::sync::{Arc, RwLock};

use gatehouse_token::{JwkSet, KeyEncryptionKey, SigningKey, Verifier, VerifierConfig, now_unix};

use crate::{Store, StoreError, StoredKey};

/// A consistent view of the keys: the one that signs, and all that verify.
pub struct KeyView {
    pub signer: Arc<SigningKey>,
    pub jwks: JwkSet,
    pub verifier: Verifier,
}

pub struct KeyRing {
    current: RwLock<Arc<KeyView>>,
    verifier_config: VerifierConfig,
}

impl KeyRing {
    /// Loads the keys, generating and storing the first one when the store has none.
    pub async fn load_or_create(
        store: &dyn Store,
        kek: &KeyEncryptionKey,
        verifier_config: VerifierConfig,
    ) -> Result<Self, StoreError> {
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() {
            let key = SigningKey::generate().map_err(|e| StoreError::Backend(e.to_string()))?;
            let now = now_unix();
            let record = StoredKey {
                kid: key.kid().to_owned(),
                alg: SigningKey::ALGORITHM.into(),
                sealed_private_key: kek
                    .seal(key.kid(), key.pkcs8())
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
                public_jwk: serde_json::to_string(&key.public_jwk())
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
                created_at: now,
                activates_at: now,
                retired_at: None,
            };
            store.insert_signing_key(&record).await?;
            tracing::info!(kid = key.kid(), "generated the first signing key");
            // Re-read: another node starting at the same moment may have stored its own first key,
            // and every node must pick the same signer.
            stored = store.signing_keys().await?;
        }
        let view = build_view(&stored, kek, &verifier_config)?;
        Ok(Self {
            current: RwLock::new(Arc::new(view)),
            verifier_config,
        })
    }

    pub fn view(&self) -> Arc<KeyView> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the view from the store (after a rotation, or a change made by another node).
    pub async fn reload(
        &self,
        store: &dyn Store,
        kek: &KeyEncryptionKey,
    ) -> Result<(), StoreError> {
        let stored = store.signing_keys().await?;
        let view = Arc::new(build_view(&stored, kek, &self.verifier_config)?);
        match self.current.write() {
            Ok(mut guard) => *guard = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
        Ok(())
    }
}

fn build_view(
    stored: &[StoredKey],
    kek: &KeyEncryptionKey,
    verifier_config: &VerifierConfig,
) -> Result<KeyView, StoreError> {
    let now = now_unix();
    let live: Vec<&StoredKey> = stored.iter().filter(|k| k.retired_at.is_none()).collect();
    // The newest key that has activated signs; ties break on kid, so every node picks the same one.
    let signer_record = live
        .iter()
        .filter(|k| k.activates_at <= now)
        .max_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)))
        .or_else(|| live.first())
        .ok_or_else(|| StoreError::Corrupt("no live signing key".into()))?;
    let pkcs8 = kek
        .open(&signer_record.kid, &signer_record.sealed_private_key)
        .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", signer_record.kid)))?;
    let signer = SigningKey::from_pkcs8(&signer_record.kid, &pkcs8)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let keys = live
        .iter()
        .map(|k| serde_json::from_str(&k.public_jwk))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("public key: {e}")))?;
    let jwks = JwkSet { keys };
    let verifier = Verifier::new(verifier_config.clone(), &jwks);
    Ok(KeyView {
        signer: Arc::new(signer),
        jwks,
        verifier,
    })
}
