//! Why a request was refused, answered the way RFC 6750 and RFC 9457 say: a `WWW-Authenticate`
//! challenge and an `application/problem+json` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_proto::Challenge;
pub use gatehouse_proto::REALM;
pub use gatehouse_proto::web::problem;
use gatehouse_proto::web::set_challenge;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer token: 401 with a bare challenge (RFC 6750 §3.1).
    MissingToken,
    /// 401 `invalid_token`, with a description safe to show.
    InvalidToken(String),
    /// 403 `insufficient_scope`, naming the scope that was needed.
    InsufficientScope {
        required: String,
        description: String,
    },
    /// 403: the holder lacks the role the route needs.
    MissingRole { description: String },
    /// 503: this process cannot currently tell revoked tokens from good ones.
    Unavailable,
}

impl Rejection {
    pub fn revoked() -> Self {
        Self::InvalidToken("the token has been revoked".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope { .. } | Self::MissingRole { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short label, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::MissingRole { .. } => "missing_role",
            Self::Unavailable => "revocations_stale",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::MissingToken => "a bearer access token is required",
            Self::InvalidToken(d)
            | Self::InsufficientScope { description: d, .. }
            | Self::MissingRole { description: d } => d,
            Self::Unavailable => {
                "token checks are unavailable: the list of revoked tokens is out of date"
            }
        }
    }

    fn challenge(&self) -> Option<Challenge<'_>> {
        match self {
            Self::MissingToken => Some(Challenge::Bare),
            Self::InvalidToken(d) => Some(Challenge::InvalidToken(d)),
            Self::InsufficientScope {
                required,
                description,
            } => Some(Challenge::InsufficientScope {
                description,
                scope: Some(required),
            }),
            Self::MissingRole { description } => Some(Challenge::InsufficientScope {
                description,
                scope: None,
            }),
            Self::Unavailable => None,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = problem(self.status(), self.detail());
        if let Some(challenge) = self.challenge() {
            set_challenge(response.headers_mut(), challenge);
        }
        response
    }
}
