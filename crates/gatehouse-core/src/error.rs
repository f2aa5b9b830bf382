//! Typed errors of the domain. The server maps each to an HTTP answer in one place; nothing here
//! knows a status code.

use std::borrow::Cow;

pub use gatehouse_proto::OAuthErrorCode;

/// An error answered in the OAuth JSON form `{"error": …, "error_description": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: Cow<'static, str>,
    /// Set when a request was too large: the answer is 413 instead of 400.
    pub too_large: bool,
    /// Set when a rate limit refused the request: 429 with `Retry-After` of this many seconds.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            too_large: false,
            retry_after: None,
        }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_client_metadata(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidClientMetadata, d)
    }
    pub fn invalid_token(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidToken, d)
    }
    pub fn server_error() -> Self {
        Self::new(
            OAuthErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
    /// Over a rate limit. RFC 6749 has no code for it; `temporarily_unavailable` says what a client
    /// needs to know, and the status and `Retry-After` say when to come back.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "too many requests; retry later",
            )
        }
    }

    pub fn too_large(limit: usize) -> Self {
        Self {
            too_large: true,
            ..Self::invalid_request(format!("the request body exceeds {limit} bytes"))
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "could not serve an OAuth request now");
                Self::new(
                    OAuthErrorCode::TemporarilyUnavailable,
                    "the server is temporarily unable to handle the request",
                )
            }
            _ => {
                tracing::error!(error = %e, "store failure during an OAuth request");
                Self::server_error()
            }
        }
    }
}

/// Why a bearer token was not accepted at a protected resource (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("no bearer token was presented")]
    Missing,
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    #[error("{0}")]
    InsufficientScope(Cow<'static, str>),
}

/// One invalid field of a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub detail: Cow<'static, str>,
}

/// Errors of the non-OAuth APIs, answered as RFC 9457 problem details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("the request is malformed: {0}")]
    BadRequest(Cow<'static, str>),
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("unsupported content type: {0}")]
    UnsupportedMediaType(Cow<'static, str>),
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    #[error("{0}")]
    Unauthorized(TokenProblem),
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    #[error("the service is temporarily unavailable")]
    Unavailable,
    #[error("the server could not complete the request")]
    Internal,
}

impl ApiError {
    pub fn field(field: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(vec![FieldError {
            field,
            detail: detail.into(),
        }])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "could not serve an API request now");
                Self::Unavailable
            }
            StoreError::Conflict(what) => Self::Conflict(what),
            _ => {
                tracing::error!(error = %e, "store failure during an API request");
                Self::Internal
            }
        }
    }
}

/// Persistence failures. `Backend` text is for logs only and never reaches a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(Cow<'static, str>),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("store failure: {0}")]
    Backend(String),
}
