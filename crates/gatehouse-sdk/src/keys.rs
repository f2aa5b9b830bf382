//! The issuer's published keys, fetched on demand with a cooldown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gatehouse_token::{JwkSet, Verifier, VerifierConfig};

use crate::error::{SdkError, get_json};

pub const JWKS_FETCHES: &str = "gatehouse_jwks_fetches_total";

/// The current key set as a ready [`Verifier`], swapped whole when the JWKS is fetched again.
pub(crate) struct RemoteKeys {
    http: reqwest::Client,
    jwks_uri: String,
    config: VerifierConfig,
    current: ArcSwap<Verifier>,
    /// When the JWKS was last fetched; held across a fetch so concurrent callers wait for one
    /// fetch instead of starting their own.
    last_fetch: tokio::sync::Mutex<Instant>,
    cooldown: Duration,
}

impl RemoteKeys {
    pub(crate) async fn fetch(
        http: reqwest::Client,
        jwks_uri: String,
        config: VerifierConfig,
        cooldown: Duration,
    ) -> Result<Self, SdkError> {
        let set = fetch_set(&http, &jwks_uri).await?;
        Ok(Self {
            current: ArcSwap::from_pointee(Verifier::new(config.clone(), &set)),
            http,
            jwks_uri,
            config,
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            cooldown,
        })
    }

    pub(crate) fn current(&self) -> Arc<Verifier> {
        self.current.load_full()
    }

    /// Whether the current key set has `kid`, without taking a reference count.
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.current.load().knows_kid(kid)
    }

    /// Fetches the JWKS again because a token names `kid`, which is not known, unless it was
    /// fetched within the cooldown: a flood of made-up kids costs the issuer one fetch per
    /// cooldown. Returns the verifier to use afterwards.
    pub(crate) async fn refresh_for_unknown(&self, kid: &str) -> Arc<Verifier> {
        let mut last = self.last_fetch.lock().await;
        let current = self.current();
        if current.knows_kid(kid) || last.elapsed() < self.cooldown {
            return current;
        }
        self.fetch_now(&mut last).await;
        self.current()
    }

    /// Fetches the JWKS now (the issuer said its keys changed).
    pub(crate) async fn refresh(&self) {
        let mut last = self.last_fetch.lock().await;
        self.fetch_now(&mut last).await;
    }

    async fn fetch_now(&self, last: &mut Instant) {
        *last = Instant::now();
        match fetch_set(&self.http, &self.jwks_uri).await {
            Ok(set) => self
                .current
                .store(Arc::new(Verifier::new(self.config.clone(), &set))),
            // Keep the keys we have: an outage of the issuer must not stop verification.
            Err(e) => tracing::warn!(error = %e, "cannot fetch the issuer's keys"),
        }
    }
}

async fn fetch_set(http: &reqwest::Client, jwks_uri: &str) -> Result<JwkSet, SdkError> {
    metrics::counter!(JWKS_FETCHES).increment(1);
    get_json(http, jwks_uri).await
}

/// Fetches the keys now and then even without news, so a key retired while the feed was away
/// stops verifying within this period.
pub(crate) async fn refresh_periodically(keys: std::sync::Weak<RemoteKeys>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(keys) = keys.upgrade() else {
            return;
        };
        keys.refresh().await;
    }
}
