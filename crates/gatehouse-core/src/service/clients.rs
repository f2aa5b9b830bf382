//! Client authentication at the token endpoint (RFC 6749 §2.3) and the client cache that keeps the
//! steady-state `client_credentials` path off the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::AuthService;
use crate::{AuthMethod, Client, OAuthError, ScopeSet, StoreError, secret};

/// How the client presented itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentedAuth {
    /// `Authorization: Basic`.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
    /// `client_id` alone: a public client.
    None,
}

/// The credentials a token request carried.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<String>,
    pub method: PresentedAuth,
}

/// A client with what it may be granted worked out once.
#[derive(Debug)]
pub struct CachedClient {
    pub client: Client,
    /// What it may be granted for itself (`client_credentials`): its own scopes plus its roles'.
    pub own_scopes: ScopeSet,
    /// The most a token it obtains for a person may carry; `None` for a first-party client, which
    /// is limited only by the person's own scopes.
    pub delegation_limit: Option<ScopeSet>,
}

/// The most clients kept in memory at once.
const CACHED_CLIENTS_MOST: usize = 100_000;

pub(super) struct ClientCache {
    ttl: Duration,
    /// At most this many entries (`CACHED_CLIENTS_MOST` but in tests).
    most: usize,
    /// Bumped by every invalidation, so a read that started before one cannot re-insert what it
    /// read afterwards.
    generation: AtomicU64,
    entries: RwLock<HashMap<String, (Arc<CachedClient>, Instant)>>,
}

impl ClientCache {
    pub(super) fn new(ttl_secs: u64) -> Self {
        Self::bounded(ttl_secs, CACHED_CLIENTS_MOST)
    }

    fn bounded(ttl_secs: u64, most: usize) -> Self {
        Self {
            ttl: Duration::from_secs(ttl_secs),
            most,
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<CachedClient>> {
        let entries = self.entries.read().ok()?;
        let (client, loaded) = entries.get(id)?;
        (loaded.elapsed() < self.ttl).then(|| client.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `client` unless an invalidation happened since `read_at` (a generation).
    fn put(&self, client: Arc<CachedClient>, read_at: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if self.generation() != read_at {
                return;
            }
            if entries.len() >= self.most {
                self.make_room(&mut entries);
            }
            entries.insert(client.client.id.clone(), (client, Instant::now()));
        }
    }

    /// Bounded, so a flood of distinct ids cannot grow it without limit: expired entries go
    /// first, then a tenth of the rest, picked by the map's own (random) order. Emptying it
    /// instead would make every client miss at once whenever more than the bound are active.
    fn make_room(&self, entries: &mut HashMap<String, (Arc<CachedClient>, Instant)>) {
        let now = Instant::now();
        entries.retain(|_, (_, loaded)| now.duration_since(*loaded) < self.ttl);
        let excess = entries.len().saturating_sub(self.most * 9 / 10);
        if excess > 0 {
            let evicted: Vec<String> = entries.keys().take(excess).cloned().collect();
            for id in evicted {
                entries.remove(&id);
            }
        }
    }

    /// Forgets every client: their allowed scopes depend on roles, which just changed.
    pub(super) fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }

    pub(super) fn invalidate(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(id);
        }
    }
}

const AUTH_FAILED: &str = "client authentication failed";

impl AuthService {
    /// A client by id, from the cache when fresh.
    pub(super) async fn cached_client(
        &self,
        id: &str,
    ) -> Result<Option<Arc<CachedClient>>, StoreError> {
        if let Some(hit) = self.clients.get(id) {
            return Ok(Some(hit));
        }
        let read_at = self.clients.generation();
        let Some(client) = self.store.client(id).await? else {
            return Ok(None);
        };
        let role_scopes = self.scopes_of_roles(&client.roles).await?;
        let cached = Arc::new(CachedClient {
            own_scopes: client
                .scopes
                .clone()
                .unwrap_or_default()
                .union(&role_scopes),
            delegation_limit: client.scopes.as_ref().map(|s| s.union(&role_scopes)),
            client,
        });
        self.clients.put(cached.clone(), read_at);
        Ok(Some(cached))
    }

    /// A client changed through this node: forget it here at once (other nodes learn of it from
    /// the change log that the write went to).
    pub(super) fn forget_client(&self, id: &str) {
        self.clients.invalidate(id);
    }

    /// A role changed: every cached client's allowed scopes may be wrong now.
    pub(super) fn forget_all_clients(&self) {
        self.clients.clear();
    }

    /// Authenticates the client of a token request. Every failure is the same `invalid_client`, so
    /// the answer does not tell whether the client exists.
    pub(super) async fn authenticate_client(
        &self,
        auth: &ClientAuth,
    ) -> Result<Arc<CachedClient>, OAuthError> {
        let found = self.cached_client(&auth.client_id).await?;
        let Some(found) = found else {
            return Err(OAuthError::invalid_client(AUTH_FAILED));
        };
        let client = &found.client;
        // The method registered is the only one accepted (RFC 7591 §2): a secret sent another
        // way than agreed is refused, so it cannot be tried where it was not meant to travel.
        let registered_method = matches!(
            (client.auth_method, auth.method),
            (AuthMethod::ClientSecretBasic, PresentedAuth::Basic)
                | (AuthMethod::ClientSecretPost, PresentedAuth::Post)
                | (AuthMethod::None, PresentedAuth::None)
        );
        let authenticated = match (&client.secret_hash, &auth.secret, auth.method) {
            (None, None, PresentedAuth::None) => client.is_public(),
            (Some(hash), Some(presented), PresentedAuth::Basic | PresentedAuth::Post) => {
                // After a rotation the previous secret works until its overlap ends.
                let previous = match (
                    &client.previous_secret_hash,
                    client.previous_secret_expires_at,
                ) {
                    (Some(old), Some(until)) if self.now() < until => {
                        secret::secret_matches(presented, old)
                    }
                    _ => false,
                };
                secret::secret_matches(presented, hash) | previous
            }
            _ => false,
        };
        if !authenticated {
            return Err(OAuthError::invalid_client(AUTH_FAILED));
        }
        if !registered_method {
            // Only a caller that proved the secret learns which method to use.
            return Err(OAuthError::invalid_client(format!(
                "this client authenticates with {}",
                client.auth_method.as_str()
            )));
        }
        if client.blocked_at.is_some() {
            return Err(OAuthError::invalid_client("the client is blocked"));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrantType;

    fn cached(id: usize) -> Arc<CachedClient> {
        let client = Client::new(
            format!("client-{id}"),
            "c".into(),
            AuthMethod::ClientSecretBasic,
            vec![GrantType::ClientCredentials],
            0,
        );
        Arc::new(CachedClient {
            client,
            own_scopes: ScopeSet::default(),
            delegation_limit: None,
        })
    }

    #[test]
    fn a_full_cache_drops_a_tenth_not_everything() {
        let cache = ClientCache::bounded(60, 100);
        for id in 0..100 {
            cache.put(cached(id), cache.generation());
        }
        let kept_before = (0..100)
            .filter(|id| cache.get(&format!("client-{id}")).is_some())
            .count();
        assert_eq!(kept_before, 100);
        cache.put(cached(100), cache.generation());
        let kept = (0..=100)
            .filter(|id| cache.get(&format!("client-{id}")).is_some())
            .count();
        assert_eq!(kept, 91, "90 survivors and the newcomer");
        assert!(cache.get("client-100").is_some());
    }

    #[test]
    fn a_read_from_before_an_invalidation_is_not_cached() {
        let cache = ClientCache::bounded(60, 100);
        let read_at = cache.generation();
        cache.invalidate("client-1");
        cache.put(cached(1), read_at);
        assert!(cache.get("client-1").is_none());
    }
}
