//! The authorization server's settings, as one typed struct handed in at start.

use gatehouse_token::SigningAlgorithm;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of every token and the base of every endpoint URL in discovery.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// A login's refresh tokens stop working this long after the login, however often refreshed.
    pub refresh_family_lifetime_secs: u64,
    /// A rotated refresh token presented again within this window is a concurrent duplicate, not theft.
    pub refresh_reuse_grace_secs: u64,
    /// Clock skew tolerated when checking `exp`/`iat` of presented tokens.
    pub token_leeway_secs: u64,
    /// How long a cached client record may be used before it is read again. Changes made through
    /// this node invalidate it at once.
    pub client_cache_ttl_secs: u64,
    /// Password hashes computed at once; further logins wait their turn.
    pub max_concurrent_password_hashes: usize,
    /// Password checks one IP address, or one username, may have waiting or running at once;
    /// more are answered 503 at once, so a flood from one source leaves room for everyone else
    /// (0: an eighth of the hashing queue, 8 per hashing thread).
    pub password_checks_per_source: usize,
    /// The algorithm of the key that signs access and ID tokens. Changing it rotates the key at
    /// the next start (the old key verifies until its tokens expire).
    pub signing_algorithm: SigningAlgorithm,
    /// A rotated-in signing key is published this long before it signs, so verifiers that cache
    /// the JWKS (for up to a minute) have it first.
    pub key_activation_delay_secs: u64,
    /// Failed logins for one username answered at once; after that each waits longer.
    pub login_delay_after_failures: u32,
    /// The first such delay, doubling with each further failure (at most 8 s).
    pub login_failure_delay_ms: u64,
    /// Failures that lock a username for `login_lock_secs` (0: never).
    pub login_lock_after_failures: u32,
    pub login_lock_secs: u64,
    /// How long a browser is remembered as one its owner signed in from (its device cookie):
    /// guesses from elsewhere do not lock the owner out of it.
    pub device_cookie_lifetime_secs: u64,
    /// Audit events older than this are deleted (0: kept forever).
    pub audit_retention_days: u32,
    /// When on, a new password login ends the user's other sessions.
    pub single_session: bool,
    /// After a client secret is rotated, how long the previous one keeps working.
    pub secret_rotation_overlap_secs: u64,
    /// The legacy password grant (RFC 9700 §2.4 says not to use it). On for the reference
    /// scripts; turn it off when every application signs people in through the browser.
    pub password_grant: bool,
    /// How long an authorization code may wait to be exchanged (at most 60 s).
    pub authorization_code_ttl_secs: u64,
    /// How long an ID token is valid.
    pub id_token_ttl_secs: u64,
    /// A browser sign-in ends after this long without a visit to the hosted pages …
    pub browser_session_idle_secs: u64,
    /// … and this long after the password was entered, however active.
    pub browser_session_lifetime_secs: u64,
    pub registration: RegistrationConfig,
}

/// The longest an authorization code may live (RFC 6749 §4.1.2 recommends at most ten minutes;
/// codes here are exchanged by machines within seconds).
pub const MAX_AUTHORIZATION_CODE_TTL_SECS: u64 = 60;

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audience: "gatehouse".into(),
            access_token_ttl_secs: 600,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            refresh_family_lifetime_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 2,
            token_leeway_secs: 30,
            client_cache_ttl_secs: 30,
            // Half the cores: a login flood must leave the others to every other request.
            max_concurrent_password_hashes: std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1),
            secret_rotation_overlap_secs: 3600,
            single_session: false,
            audit_retention_days: 365,
            login_delay_after_failures: 3,
            login_failure_delay_ms: 250,
            login_lock_after_failures: 10,
            login_lock_secs: 900,
            password_checks_per_source: 0,
            device_cookie_lifetime_secs: 365 * 24 * 3600,
            key_activation_delay_secs: 120,
            signing_algorithm: SigningAlgorithm::EdDSA,
            password_grant: true,
            authorization_code_ttl_secs: MAX_AUTHORIZATION_CODE_TTL_SECS,
            id_token_ttl_secs: 3600,
            browser_session_idle_secs: 12 * 3600,
            browser_session_lifetime_secs: 14 * 24 * 3600,
            registration: RegistrationConfig::default(),
        }
    }
}

impl AuthConfig {
    /// The issuer without a trailing slash, for building endpoint URLs.
    pub fn base_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// Whether the issuer is served over TLS, so browser cookies can be `Secure` and `__Host-`.
    pub fn issuer_is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Whether this server accepts `grant` at its token endpoint.
    pub fn accepts_grant(&self, grant: crate::GrantType) -> bool {
        self.password_grant || grant != crate::GrantType::Password
    }

    /// The grant types this server accepts at its token endpoint.
    pub fn grant_types(&self) -> Vec<crate::GrantType> {
        crate::GrantType::ALL
            .into_iter()
            .filter(|g| self.accepts_grant(*g))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationMode {
    /// Anyone may register a machine client.
    Open,
    /// Registration needs `Authorization: Bearer <initial access token>` (RFC 7591 §3).
    InitialAccessToken,
    /// No self-registration.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    /// The most a self-registered client may be allowed; no `scope` in the request means all of them.
    pub allowed_scopes: Vec<String>,
    /// Grant types a self-registered client may ask for.
    pub allowed_grant_types: Vec<String>,
    /// The initial access token for `initial-access-token` mode. Comes from the environment or a
    /// file, never from a committed config file.
    #[serde(skip_serializing)]
    pub initial_access_token: Option<String>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Open,
            allowed_scopes: vec!["rates:read".into(), "fx:read".into()],
            // Machines only, by default: an operator who lets applications that sign people in
            // register themselves adds `authorization_code` and `refresh_token` (people then
            // consent to each, and its tokens carry no roles).
            allowed_grant_types: vec!["client_credentials".into()],
            initial_access_token: None,
        }
    }
}

impl AuthConfig {
    pub fn throttle_settings(&self) -> crate::throttle::ThrottleSettings {
        crate::throttle::ThrottleSettings {
            delay_after: self.login_delay_after_failures,
            base_delay: std::time::Duration::from_millis(self.login_failure_delay_ms),
            lock_after: self.login_lock_after_failures,
            lock_for: std::time::Duration::from_secs(self.login_lock_secs),
        }
    }
}
