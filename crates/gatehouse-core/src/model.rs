//! The records the authorization server keeps. Times are Unix seconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ScopeSet;

/// The id of the built-in public client that people log in through.
pub const WEB_CLIENT_ID: &str = "gatehouse-web";
/// The role every signed-up user receives.
pub const USER_ROLE: &str = "user";
/// The role that may use the admin API.
pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or(())
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: identified by `client_id` alone.
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::None,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    /// What the client may ask for. `None`: first-party, limited only by the user's own scopes.
    pub scopes: Option<ScopeSet>,
    pub roles: Vec<String>,
    /// SHA-256 of the RFC 7592 registration access token, for self-registered clients.
    pub registration_token_hash: Option<String>,
    /// After a secret rotation, the old secret's hash, accepted until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub blocked_at: Option<i64>,
    /// Tokens of this client issued before this time are dead.
    pub not_before: i64,
    /// Where the authorization endpoint may send people back (compared exactly, RFC 6749 §3.1.2;
    /// any port for a loopback IP, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send people afterwards (compared exactly).
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party application: people are not asked to consent to it.
    pub skip_consent: bool,
}

impl Client {
    /// A client as first stored at `now`: no secret, scopes, roles or registration yet, not
    /// blocked, nothing cut off.
    pub fn new(
        id: String,
        name: String,
        auth_method: AuthMethod,
        grant_types: Vec<GrantType>,
        now: i64,
    ) -> Self {
        Self {
            id,
            name,
            secret_hash: None,
            auth_method,
            grant_types,
            scopes: None,
            roles: Vec::new(),
            registration_token_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            blocked_at: None,
            not_before: 0,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            skip_consent: false,
        }
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }
    /// Registered by itself (RFC 7591) rather than by an operator: trusted with nothing a
    /// person did not consent to.
    pub fn is_self_registered(&self) -> bool {
        self.registration_token_hash.is_some()
    }
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `updated` allows less than this client did (a scope, role or grant type taken
    /// away), so that tokens issued before the change must stop working.
    pub fn takes_away(&self, updated: &Client) -> bool {
        let scopes_narrowed = match (&self.scopes, &updated.scopes) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(before), Some(after)) => !before.is_subset(after),
        };
        scopes_narrowed
            || roles_taken_away(&self.roles, &updated.roles)
            || self
                .grant_types
                .iter()
                .any(|g| !updated.grant_types.contains(g))
    }
}

/// Where a cut-off at `cutoff` leaves a not-before time that stood at `current`: at the cut-off,
/// or one second past `current` if an earlier cut-off in the same second (or later) already put it
/// there, since tokens issued meanwhile carry it as their `iat`. The store applies the same rule
/// in SQL.
pub fn advance_not_before(current: i64, cutoff: i64) -> i64 {
    if current >= cutoff {
        current + 1
    } else {
        cutoff
    }
}

/// Whether some role in `before` is missing from `after`.
pub fn roles_taken_away(before: &[String], after: &[String]) -> bool {
    before.iter().any(|role| !after.contains(role))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub blocked_at: Option<i64>,
    pub not_before: i64,
}

/// A named bundle of default scopes that users and clients hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
}

/// One login's chain of refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// Absolute end of the family, however often it is refreshed.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The browser sign-in it came from (authorization code flow); ending that ends this too.
    pub browser_session_id: Option<String>,
}

/// A browser signed in to the hosted pages, known by the hash of its cookie's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Public: the ID token's `sid`, and the handle logout and the account page use.
    pub id: String,
    /// SHA-256 of the cookie's value.
    pub secret_hash: String,
    pub user_id: String,
    /// When the person last proved who they are (OIDC `auth_time`); never before the user's
    /// not-before time as it stood then, so a cut-off ends every earlier browser session.
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// Absolute end, however active the browser is.
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An authorization code (RFC 6749 §4.1.2), stored only as its hash, with everything it is
/// bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// PKCE `code_challenge` (S256, RFC 7636).
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub auth_time: i64,
    pub browser_session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The session (refresh family) its first use started: ended when the code comes back.
    pub family_id: Option<String>,
}

/// What a person has allowed a client, so they are not asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scope: ScopeSet,
    pub granted_at: i64,
}

/// One refresh token, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub hash: String,
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was exchanged for its successor; a later use is reuse.
    pub rotated_at: Option<i64>,
}

/// An access token revoked before its expiry (RFC 7009), denied by `jti` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub subject: String,
    pub client_id: String,
    pub expires_at: i64,
    pub revoked_at: i64,
}

/// A signing key as kept in the store: the private part sealed under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    /// From when it signs (a new key is published before it signs).
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

/// A security-relevant event, kept for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

/// Where a request came from, for sessions and the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What changed, for other nodes and for gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A client was changed, blocked, cut off or deleted (subject: client id).
    Client,
    /// A role's scopes changed (subject: role name).
    Role,
    /// A signing key was added or scheduled to retire (subject: kid).
    Keys,
    /// An access token was revoked (subject: jti; until: its expiry).
    TokenRevoked,
    /// Every token of a user or client issued before `until` is dead (subject: its id).
    SubjectCutoff,
    /// A sign-in session ended, with every access token issued in it (subject: the refresh
    /// family's id, the tokens' `sid`; until: when the last of them expires).
    SessionRevoked,
    /// Logged by a newer version of Gatehouse: read, and skipped. Never written.
    Unknown,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Client,
        ChangeKind::Role,
        ChangeKind::Keys,
        ChangeKind::TokenRevoked,
        ChangeKind::SubjectCutoff,
        ChangeKind::SessionRevoked,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Role => "role",
            Self::Keys => "keys",
            Self::TokenRevoked => "token_revoked",
            Self::SubjectCutoff => "subject_cutoff",
            Self::SessionRevoked => "session_revoked",
            Self::Unknown => "unknown",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ChangeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// One entry of the change log, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub at: i64,
    pub kind: ChangeKind,
    pub subject: String,
    pub until: Option<i64>,
}
