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
