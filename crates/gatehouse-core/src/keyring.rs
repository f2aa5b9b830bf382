//! The signing keys: loaded from the store (sealed under the key-encryption key), created on first
//! start, rotated on demand, published as a JWKS, and used to sign and verify access tokens.
//!
//! A rotated-in key is published at once but signs only from its `activates_at`, so every verifier
//! can fetch it first; a rotated-out key stays published until its `retired_at`, after the last
//! token it signed has expired. The view of which key signs and which verify is rebuilt, from keys
//! already unsealed in memory, whenever the clock crosses one of those times.

use std::sync::{Arc, RwLock};

use gatehouse_token::{
    Jwk, JwkSet, KeyEncryptionKey, SigningAlgorithm, SigningKey, UnknownAlgorithm, Verifier,
    VerifierConfig,
};

use crate::{AuthConfig, Store, StoreError, StoredKey, Write};

/// A consistent view of the keys: the one that signs, and all that verify.
pub struct KeyView {
    pub signer: Arc<SigningKey>,
    pub jwks: JwkSet,
    pub verifier: Verifier,
    /// When a key activates or retires next; the view must be rebuilt then.
    pub valid_until: i64,
}

struct LoadedKey {
    record: StoredKey,
    /// `None` for a key this node cannot open (an algorithm of a later version, another
    /// key-encryption key): it is published from its stored public half, but never signs here.
    key: Option<Arc<SigningKey>>,
    public: Jwk,
}

pub struct KeyRing {
    keys: RwLock<Arc<Vec<LoadedKey>>>,
    current: RwLock<Arc<KeyView>>,
    verifier_config: VerifierConfig,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// A new key record of `alg`, sealed, that signs from `activates_at`.
pub fn new_key_record(
    kek: &KeyEncryptionKey,
    alg: SigningAlgorithm,
    activates_at: i64,
    now: i64,
) -> Result<StoredKey, StoreError> {
    let key = SigningKey::generate_for(alg).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(StoredKey {
        kid: key.kid().to_owned(),
        alg: alg.as_str().into(),
        sealed_private_key: kek
            .seal(key.kid(), key.pkcs8())
            .map_err(|e| StoreError::Backend(e.to_string()))?,
        public_jwk: serde_json::to_string(&key.public_jwk())
            .map_err(|e| StoreError::Backend(e.to_string()))?,
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

/// A rotation to a new key of the configured algorithm: published now, signing once every
/// verifier can have fetched it, while every older key retires after the last token it can
/// have signed has expired.
pub fn rotation(
    kek: &KeyEncryptionKey,
    config: &AuthConfig,
    now: i64,
) -> Result<Rotation, StoreError> {
    let record = new_key_record(
        kek,
        config.signing_algorithm,
        now + config.key_activation_delay_secs as i64,
        now,
    )?;
    let retire_at =
        record.activates_at + config.access_token_ttl_secs as i64 + config.token_leeway_secs as i64;
    let write = Write::AddSigningKey {
        key: record.clone(),
        retire_others_at: Some(retire_at),
    };
    Ok(Rotation {
        record,
        retire_others_at: retire_at,
        write,
    })
}

pub struct Rotation {
    pub record: StoredKey,
    pub retire_others_at: i64,
    pub write: Write,
}

impl KeyRing {
    /// Loads the keys, generating and storing the first one when the store has none, and
    /// rotating to the configured algorithm when no key of it is in service.
    pub async fn load_or_create(
        store: &dyn Store,
        kek: &KeyEncryptionKey,
        config: &AuthConfig,
        verifier_config: VerifierConfig,
        now: i64,
    ) -> Result<Self, StoreError> {
        let alg = config.signing_algorithm;
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() {
            let record = new_key_record(kek, alg, now, now)?;
            store
                .commit(&[Write::AddSigningKey {
                    key: record.clone(),
                    retire_others_at: None,
                }])
                .await?;
            tracing::info!(kid = %record.kid, %alg, "generated the first signing key");
            // Re-read: another node starting at the same moment may have stored its own first key,
            // and every node must pick the same signer.
            stored = store.signing_keys().await?;
        } else if !stored
            .iter()
            .any(|k| k.alg == alg.as_str() && k.retired_at.is_none())
        {
            // Nothing is written by a node that cannot read the keys in service.
            unseal(stored.clone(), kek, now)?;
            // The algorithm was changed: rotate as an operator would, so tokens signed with the
            // old key stay valid until they expire.
            let Rotation { record, write, .. } = rotation(kek, config, now)?;
            store.commit(&[write]).await?;
            tracing::warn!(
                kid = %record.kid,
                %alg,
                signs_from = record.activates_at,
                "no signing key of the configured algorithm was in service: rotated to a new one"
            );
            stored = store.signing_keys().await?;
        }
        let keys = Arc::new(unseal(stored, kek, now)?);
        let view = build_view(&keys, &verifier_config, now)?;
        Ok(Self {
            keys: RwLock::new(keys),
            current: RwLock::new(Arc::new(view)),
            verifier_config,
        })
    }

    /// The keys as of `now`. Cheap: a clone of an `Arc`, plus a rebuild from memory when a key
    /// activated or retired since the last call.
    pub fn view(&self, now: i64) -> Arc<KeyView> {
        let view = read(&self.current);
        if now < view.valid_until {
            return view;
        }
        match build_view(&read(&self.keys), &self.verifier_config, now) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                write(&self.current, fresh.clone());
                fresh
            }
            Err(e) => {
                tracing::error!(error = %e, "keeping the previous key view");
                view
            }
        }
    }

    /// Rebuilds from the store (after a rotation, or a change made by another node).
    pub async fn reload(
        &self,
        store: &dyn Store,
        kek: &KeyEncryptionKey,
        now: i64,
    ) -> Result<(), StoreError> {
        let keys = Arc::new(unseal(store.signing_keys().await?, kek, now)?);
        let view = Arc::new(build_view(&keys, &self.verifier_config, now)?);
        write(&self.keys, keys);
        write(&self.current, view);
        Ok(())
    }
}

/// The keys in service: retired ones are left sealed. One this node cannot open is kept by its
/// public half (every node must publish the same set), and stops the node only if it is the one
/// that signs; a key-encryption key that opens none of them stops it at once.
fn unseal(
    stored: Vec<StoredKey>,
    kek: &KeyEncryptionKey,
    now: i64,
) -> Result<Vec<LoadedKey>, StoreError> {
    let mut loaded = Vec::with_capacity(stored.len());
    let mut first_failure = None;
    for record in stored {
        if record.retired_at.is_some_and(|at| at <= now) {
            continue;
        }
        match unseal_one(&record, kek) {
            Ok(key) => loaded.push(LoadedKey {
                public: key.public_jwk(),
                key: Some(Arc::new(key)),
                record,
            }),
            Err(e) => {
                tracing::warn!(kid = %record.kid, error = %e, "a signing key this node cannot open");
                match serde_json::from_str::<Jwk>(&record.public_jwk) {
                    Ok(public) => loaded.push(LoadedKey {
                        record,
                        key: None,
                        public,
                    }),
                    Err(_) => {
                        tracing::error!(kid = %record.kid, "its public key is unreadable too")
                    }
                }
                first_failure.get_or_insert(e);
            }
        }
    }
    match (loaded.iter().any(|k| k.key.is_some()), first_failure) {
        (false, Some(e)) => Err(e),
        _ => Ok(loaded),
    }
}

fn unseal_one(record: &StoredKey, kek: &KeyEncryptionKey) -> Result<SigningKey, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("signing key {}: {e}", record.kid));
    let pkcs8 = kek
        .open(&record.kid, &record.sealed_private_key)
        .map_err(|e| corrupt(e.to_string()))?;
    let alg: SigningAlgorithm = record
        .alg
        .parse()
        .map_err(|e: UnknownAlgorithm| corrupt(e.to_string()))?;
    SigningKey::from_pkcs8(&record.kid, alg, &pkcs8).map_err(|e| corrupt(e.to_string()))
}

fn build_view(
    keys: &[LoadedKey],
    verifier_config: &VerifierConfig,
    now: i64,
) -> Result<KeyView, StoreError> {
    let published: Vec<&LoadedKey> = keys
        .iter()
        .filter(|k| k.record.retired_at.is_none_or(|at| at > now))
        .collect();
    // The newest key that has activated signs, one not scheduled to retire before one that is
    // (concurrent rotations may leave a new key scheduled to retire beside another); ties
    // break on kid, so every node picks the same one. With none active yet (a clock far
    // behind), the earliest to activate signs.
    let signer = published
        .iter()
        .filter(|k| k.record.activates_at <= now)
        .max_by(|a, b| {
            let rank = |k: &LoadedKey| {
                (
                    k.record.retired_at.is_none(),
                    k.record.activates_at,
                    k.record.kid.clone(),
                )
            };
            rank(a).cmp(&rank(b))
        })
        .or_else(|| published.iter().min_by_key(|k| k.record.activates_at))
        .ok_or_else(|| StoreError::Corrupt("no published signing key".into()))?;
    let signing_key = signer.key.clone().ok_or_else(|| {
        StoreError::Corrupt(format!(
            "signing key {} cannot be opened by this node (an algorithm of a later version, or \
             another key-encryption key)",
            signer.record.kid
        ))
    })?;
    let jwks = JwkSet {
        keys: published.iter().map(|k| k.public.clone()).collect(),
    };
    let valid_until = keys
        .iter()
        .flat_map(|k| [Some(k.record.activates_at), k.record.retired_at])
        .flatten()
        .filter(|at| *at > now)
        .min()
        .unwrap_or(i64::MAX);
    Ok(KeyView {
        signer: signing_key,
        verifier: Verifier::new(verifier_config.clone(), &jwks),
        jwks,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn loaded(alg: SigningAlgorithm, activates_at: i64, retired_at: Option<i64>) -> LoadedKey {
        let kek = KeyEncryptionKey::generate().unwrap();
        let mut record = new_key_record(&kek, alg, activates_at, 0).unwrap();
        record.retired_at = retired_at;
        let pkcs8 = kek.open(&record.kid, &record.sealed_private_key).unwrap();
        let key = SigningKey::from_pkcs8(&record.kid, alg, &pkcs8).unwrap();
        LoadedKey {
            record,
            public: key.public_jwk(),
            key: Some(Arc::new(key)),
        }
    }

    fn config() -> VerifierConfig {
        VerifierConfig {
            issuer: "https://issuer.test".into(),
            audience: None,
            leeway_secs: 0,
        }
    }

    /// Two nodes rotating at once each retire the other's new key: every node must sign with
    /// the one left unretired, whatever the kids' order.
    #[test]
    fn the_key_not_scheduled_to_retire_signs() {
        for _ in 0..8 {
            let old = loaded(SigningAlgorithm::EdDSA, 0, Some(500));
            let first = loaded(SigningAlgorithm::RS256, 100, Some(400));
            let second = loaded(SigningAlgorithm::RS256, 100, None);
            let survivor = second.record.kid.clone();
            let view = build_view(&[old, first, second], &config(), 150).unwrap();
            assert_eq!(view.signer.kid(), survivor);
            assert_eq!(view.jwks.keys.len(), 3);
        }
        // Before the new keys activate, the old one still signs.
        let old = loaded(SigningAlgorithm::EdDSA, 0, Some(500));
        let kid = old.record.kid.clone();
        let view = build_view(
            &[old, loaded(SigningAlgorithm::RS256, 100, None)],
            &config(),
            50,
        )
        .unwrap();
        assert_eq!(view.signer.kid(), kid);
    }

    #[test]
    fn a_key_this_node_cannot_open_is_published_but_never_signs_here() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let good = new_key_record(&kek, SigningAlgorithm::ES256, 0, 0).unwrap();
        let mut later_alg = new_key_record(&kek, SigningAlgorithm::EdDSA, 100, 0).unwrap();
        later_alg.alg = "ML-DSA-65".into();
        let mut retired = new_key_record(&kek, SigningAlgorithm::EdDSA, 0, 0).unwrap();
        retired.retired_at = Some(10);
        retired.sealed_private_key = b"damaged".to_vec();
        let kept = unseal(vec![good.clone(), later_alg.clone(), retired], &kek, 20).unwrap();
        assert_eq!(kept.len(), 2, "the retired key is left sealed");
        // Before the unreadable key activates, the readable one signs; both are published.
        let view = build_view(&kept, &config(), 50).unwrap();
        assert_eq!(view.signer.kid(), good.kid);
        let mut published: Vec<&str> = view.jwks.keys.iter().map(|k| k.kid.as_str()).collect();
        published.sort();
        let mut expected = vec![good.kid.as_str(), later_alg.kid.as_str()];
        expected.sort();
        assert_eq!(published, expected, "the same JWKS as every other node");
        // Once it would sign, this node refuses rather than sign with a key others retire.
        assert!(build_view(&kept, &config(), 150).is_err());
        // A key-encryption key that opens nothing stops the node.
        let stranger = KeyEncryptionKey::generate().unwrap();
        assert!(unseal(vec![good], &stranger, 20).is_err());
    }
}
