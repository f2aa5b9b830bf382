//! Local verification of access tokens: signature and claims against the issuer's keys, then the
//! revocations learnt from its feed, with verdicts cached by a hash of the token.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_token::{
    AccessClaims, DEFAULT_AUDIENCE, IdClaims, VerifierConfig, VerifyError, key_id, now_unix,
};
use quick_cache::sync::Cache;

use crate::discovery::{ServerMetadata, discover};
use crate::error::SdkError;
use crate::keys::RemoteKeys;
use crate::rejection::Rejection;
use crate::revocations::{self, FeedCredentials, FeedStatus, Revocations};

/// How a [`TokenVerifier`] is set up. Only the issuer URL is required: keys, algorithms and the
/// feed's address come from the issuer's metadata.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub issuer: String,
    /// What every token's `aud` must contain (RFC 9068 §4), unless a [`crate::Policy`] names
    /// an audience of its own. Defaults to [`DEFAULT_AUDIENCE`], the audience a Gatehouse issuer
    /// puts in its tokens unless configured otherwise.
    pub audience: String,
    /// Clock skew tolerated for `exp` and `iat`.
    pub leeway_secs: u64,
    /// A token naming an unknown key fetches the JWKS again at most once per this.
    pub jwks_cooldown: Duration,
    /// Verified tokens remembered (by hash) at most; 0 turns the cache off.
    pub cache_capacity: usize,
    /// Follow the revocation feed with these credentials. Without them, revoked tokens stay
    /// valid until they expire.
    pub feed: Option<FeedCredentials>,
    /// Lost the feed for longer than this: refuse tokens (503) rather than trust a stale view.
    pub staleness_budget: Duration,
    /// While the view is stale, ask the issuer's introspection endpoint (RFC 7662) about each
    /// token, with the feed's credentials, instead of refusing. Slower, but no outage.
    pub introspect_when_stale: bool,
    /// The HTTP client to reach the issuer with: one of your own to trust a private CA (its
    /// `add_root_certificate`) or to go through a proxy. By default one with the system's roots.
    pub http: Option<reqwest::Client>,
}

impl VerifierSettings {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            leeway_secs: 30,
            jwks_cooldown: Duration::from_secs(10),
            cache_capacity: 100_000,
            feed: None,
            staleness_budget: Duration::from_secs(30),
            introspect_when_stale: false,
            http: None,
        }
    }
}

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified {
    pub claims: AccessClaims,
    /// The key that signed it: when the issuer stops publishing that key, the verdict ends.
    kid: String,
}

/// Verifies access tokens locally; shared by the gateway and the services' extractor.
pub struct TokenVerifier {
    metadata: ServerMetadata,
    keys: Arc<RemoteKeys>,
    revocations: Arc<Revocations>,
    cache: Option<Cache<[u8; 32], Arc<Verified>>>,
    /// Checked on every answer, cached or not; a policy may name another.
    audience: String,
    leeway_secs: i64,
    /// Set when stale views fall back to introspection.
    introspection: Option<Introspection>,
}

struct Introspection {
    http: reqwest::Client,
    endpoint: String,
    credentials: FeedCredentials,
}

impl TokenVerifier {
    /// Reads the issuer's metadata and keys, and starts following its revocation feed when
    /// credentials are given.
    pub async fn connect(settings: VerifierSettings) -> Result<Arc<Self>, SdkError> {
        let http = match &settings.http {
            Some(http) => http.clone(),
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| SdkError::unreachable(&settings.issuer, e))?,
        };
        let metadata = discover(&http, &settings.issuer).await?;
        let keys = Arc::new(
            RemoteKeys::fetch(
                http.clone(),
                metadata.jwks_uri.clone(),
                VerifierConfig {
                    issuer: metadata.issuer.clone(),
                    // Checked per request instead, so one cached verdict serves every audience.
                    audience: None,
                    leeway_secs: settings.leeway_secs,
                },
                settings.jwks_cooldown,
            )
            .await?,
        );
        let revocations = Arc::new(Revocations::new(
            settings.feed.is_some(),
            settings.staleness_budget,
            settings.leeway_secs as i64,
        ));
        let introspection = match (settings.introspect_when_stale, &settings.feed) {
            (false, _) => None,
            (true, None) => {
                return Err(SdkError::invalid(
                    &settings.issuer,
                    "introspecting when stale needs the feed's client credentials",
                ));
            }
            (true, Some(credentials)) => Some(Introspection {
                http: http.clone(),
                endpoint: metadata.introspection_endpoint.clone().ok_or_else(|| {
                    SdkError::invalid(
                        &settings.issuer,
                        "the issuer publishes no introspection endpoint",
                    )
                })?,
                credentials: credentials.clone(),
            }),
        };
        if let Some(credentials) = settings.feed {
            let url = metadata.revocation_feed_endpoint.clone().ok_or_else(|| {
                SdkError::invalid(&settings.issuer, "the issuer publishes no revocation feed")
            })?;
            tokio::spawn(revocations::follow(
                http,
                url,
                credentials,
                Arc::downgrade(&revocations),
                Arc::downgrade(&keys),
            ));
        }
        tokio::spawn(crate::keys::refresh_periodically(
            Arc::downgrade(&keys),
            Duration::from_secs(300),
        ));
        Ok(Arc::new(Self {
            metadata,
            keys,
            revocations,
            cache: (settings.cache_capacity > 0).then(|| Cache::new(settings.cache_capacity)),
            audience: settings.audience,
            leeway_secs: settings.leeway_secs as i64,
            introspection,
        }))
    }

    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    /// What a token's `aud` must contain when the caller names no other audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn feed_status(&self) -> FeedStatus {
        self.revocations.status()
    }

    /// Whether tokens can be checked now: the view is current, or stale views fall back to
    /// introspection.
    pub fn can_verify(&self) -> bool {
        self.revocations.status() != FeedStatus::Stale || self.introspection.is_some()
    }

    /// Waits, at most `within`, until tokens can be checked: the revocation feed has sent its
    /// backlog (or stale views fall back to introspection). Until then protected routes answer
    /// 503, so a process waits here before it says it is ready. Whether it got there.
    pub async fn wait_until_current(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.can_verify() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// How long since the revocation feed last proved current (zero when none is followed).
    pub fn feed_silence(&self) -> Duration {
        self.revocations.silence()
    }

    /// An ID token's claims once its signature, type and issuer are checked (a key it names
    /// that is not known yet is looked up once); audience, expiry and nonce are the caller's.
    pub(crate) async fn id_token_claims(&self, token: &str) -> Result<IdClaims, VerifyError> {
        let outcome = self.keys.current().verify_id_token_hint(token);
        match (outcome, key_id(token)) {
            (Err(VerifyError::UnknownKey), Some(kid)) => self
                .keys
                .refresh_for_unknown(&kid)
                .await
                .verify_id_token_hint(token),
            (outcome, _) => outcome,
        }
    }

    pub(crate) fn leeway_secs(&self) -> i64 {
        self.leeway_secs
    }

    /// Checks a bearer token meant for this verifier's [audience](TokenVerifier::audience); see
    /// [`TokenVerifier::verify_reporting_cache`].
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        self.verify_reporting_cache(token, &self.audience).await.0
    }

    /// Checks a bearer token whose `aud` must contain `audience`, and tells whether the verdict
    /// came from the cache. A cached verdict still ends at the token's expiry, its revocation, or
    /// its key's retirement.
    pub async fn verify_reporting_cache(
        &self,
        token: &str,
        audience: &str,
    ) -> (Result<Arc<Verified>, Rejection>, bool) {
        let (verdict, from_cache) = self.verify_any_audience(token).await;
        (verdict.and_then(|v| meant_for(v, audience)), from_cache)
    }

    async fn verify_any_audience(&self, token: &str) -> (Result<Arc<Verified>, Rejection>, bool) {
        if self.revocations.status() == FeedStatus::Stale {
            return match &self.introspection {
                None => (Err(Rejection::Unavailable), false),
                Some(introspection) => (
                    self.verify_by_introspection(introspection, token).await,
                    false,
                ),
            };
        }
        let Some(cache) = &self.cache else {
            return (self.verify_uncached(token).await, false);
        };
        let hash = token_hash(token);
        if let Some(verified) = cache.get(&hash) {
            return (self.still_valid(verified), true);
        }
        let result = self.verify_uncached(token).await;
        if let Ok(verified) = &result {
            cache.insert(hash, verified.clone());
        }
        (result, false)
    }

    async fn verify_uncached(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        let mut outcome = self.keys.current().verify_keyed(token);
        if outcome == Err(VerifyError::UnknownKey)
            && let Some(kid) = key_id(token)
        {
            outcome = self
                .keys
                .refresh_for_unknown(&kid)
                .await
                .verify_keyed(token);
        }
        let (claims, kid) = outcome.map_err(|e| Rejection::InvalidToken(e.to_string()))?;
        if self.revocations.is_revoked(&claims) {
            return Err(Rejection::revoked());
        }
        Ok(Arc::new(Verified { claims, kid }))
    }

    /// The stale-view path: the local checks, then the issuer's word on whether the token is
    /// still active. An issuer that cannot answer means 503, never a guess.
    async fn verify_by_introspection(
        &self,
        introspection: &Introspection,
        token: &str,
    ) -> Result<Arc<Verified>, Rejection> {
        let verified = self.verify_uncached(token).await?;
        let answer = introspection
            .http
            .post(&introspection.endpoint)
            .basic_auth(
                &introspection.credentials.client_id,
                Some(&introspection.credentials.client_secret),
            )
            .form(&[("token", token)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot reach the introspection endpoint");
                Rejection::Unavailable
            })?;
        if !answer.status().is_success() {
            tracing::warn!(status = answer.status().as_u16(), "introspection failed");
            return Err(Rejection::Unavailable);
        }
        let answer: gatehouse_proto::Introspection = answer.json().await.map_err(|e| {
            tracing::warn!(error = %e, "the introspection answer is unreadable");
            Rejection::Unavailable
        })?;
        match answer.active {
            true => Ok(verified),
            false => Err(Rejection::revoked()),
        }
    }

    fn still_valid(&self, verified: Arc<Verified>) -> Result<Arc<Verified>, Rejection> {
        if verified.claims.exp + self.leeway_secs < now_unix() {
            return Err(Rejection::InvalidToken(VerifyError::Expired.to_string()));
        }
        if !self.keys.knows_kid(&verified.kid) {
            return Err(Rejection::InvalidToken(VerifyError::UnknownKey.to_string()));
        }
        if self.revocations.is_revoked(&verified.claims) {
            return Err(Rejection::revoked());
        }
        Ok(verified)
    }
}

/// RFC 9068 §4: a token whose `aud` does not name this resource is refused as invalid.
fn meant_for(verified: Arc<Verified>, audience: &str) -> Result<Arc<Verified>, Rejection> {
    match verified.claims.aud.contains(audience) {
        true => Ok(verified),
        false => Err(Rejection::InvalidToken(
            VerifyError::WrongAudience.to_string(),
        )),
    }
}

/// SHA-256 of the token: the cache never holds tokens, and a look-alike cannot collide.
fn token_hash(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
