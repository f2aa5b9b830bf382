use serde::{Deserialize, Serialize};

pub use gatehouse_proto::Audience;

/// The claims of a Gatehouse access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated scopes, as on the wire (RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Present for tokens issued to people; machine tokens carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The sign-in session (refresh family) a person's token belongs to; revoking that session
    /// ends its access tokens too (RFC 7009 §2.1). Machine tokens carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().flatten().any(|r| r == role)
    }
}

/// The claims of an OpenID Connect ID token (OpenID Connect Core 1.0 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    /// The client the token was issued to.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the person last entered their password.
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Binds the access token issued beside it (§3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The browser session at the issuer, for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The `at_hash` (or `c_hash`) of `token` for tokens signed with EdDSA over Ed25519: the left half
/// of its SHA-512 hash, base64url-encoded (OpenID Connect Core §3.1.3.6, and the token-hash
/// guidance that Ed25519 takes SHA-512).
pub fn token_hash(token: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, token.as_bytes());
    let bytes = digest.as_ref();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}
