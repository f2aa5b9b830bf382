//! The token endpoint's bodies (RFC 6749 §5.1, §5.2) and the error codes every OAuth endpoint uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `token_type` of every token Gatehouse issues (RFC 6750).
pub const BEARER: &str = "Bearer";

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Gatehouse always names the granted scope; other issuers may leave it out when it is the
    /// one asked for (§5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OpenID Connect: the ID token, when the code was issued for scope `openid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The claims `/oauth2/userinfo` answers with (OpenID Connect Core §5.3), by scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub sub: String,
    /// With scope `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With scope `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// An OAuth error body (RFC 6749 §5.2). `error` is text so that codes of newer specifications
/// still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl ErrorResponse {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            error: code.as_str().to_owned(),
            error_description: Some(description.into()),
        }
    }
}

/// The error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 7009, RFC 7591 §3.2.2, RFC 6750 §3.1 and
/// OpenID Connect Core §3.1.2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidClientMetadata,
    InvalidToken,
    InsufficientScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    UnsupportedResponseType,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    InvalidRedirectUri,
}

impl OAuthErrorCode {
    pub const ALL: [Self; 19] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::InvalidClientMetadata,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::AccessDenied,
        Self::ServerError,
        Self::TemporarilyUnavailable,
        Self::UnsupportedResponseType,
        Self::LoginRequired,
        Self::ConsentRequired,
        Self::InteractionRequired,
        Self::RequestNotSupported,
        Self::RequestUriNotSupported,
        Self::InvalidRedirectUri,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OAuthErrorCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

/// `aud` may be one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_their_names() {
        for code in OAuthErrorCode::ALL {
            assert_eq!(code.as_str().parse::<OAuthErrorCode>(), Ok(code));
        }
        assert!("no_such_code".parse::<OAuthErrorCode>().is_err());
    }

    #[test]
    fn a_token_response_without_optional_fields_reads_and_writes_the_same() {
        let text = r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#;
        let read: TokenResponse = serde_json::from_str(text).unwrap();
        assert_eq!(read.refresh_token, None);
        assert_eq!(read.scope, None);
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
    }

    #[test]
    fn audience_is_one_string_or_many() {
        let one: Audience = serde_json::from_str(r#""api""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["web","api"]"#).unwrap();
        assert!(one.contains("api") && many.contains("api"));
        assert!(!many.contains("other"));
    }
}
