//! The authorization server's settings, as one typed struct handed in at start.

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
    /// Audit events older than this are deleted (0: kept forever).
    pub audit_retention_days: u32,
    /// When on, a new password login ends the user's other sessions.
    pub single_session: bool,
    /// After a client secret is rotated, how long the previous one keeps working.
    pub secret_rotation_overlap_secs: u64,
    pub registration: RegistrationConfig,
}

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
            key_activation_delay_secs: 120,
            registration: RegistrationConfig::default(),
        }
    }
}

impl AuthConfig {
    /// The issuer without a trailing slash, for building endpoint URLs.
    pub fn base_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
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
