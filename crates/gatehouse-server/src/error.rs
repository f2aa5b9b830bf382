//! The one place where errors become HTTP: OAuth errors as RFC 6749 §5.2 JSON, bearer-token
//! failures with RFC 6750 challenges, everything else as RFC 9457 problem details. The bodies and
//! challenges themselves are the wire contract's (`gatehouse-proto`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::{ApiError, OAuthError, OAuthErrorCode, TokenProblem};
use gatehouse_proto::web::{oauth_error, set_challenge, set_retry_after};
use gatehouse_proto::{Challenge, Problem, REALM};

/// An OAuth error on its way out.
pub struct OAuthReply(pub OAuthError);

impl From<OAuthError> for OAuthReply {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = if e.too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else if e.retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            match e.code {
                OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => {
                    StatusCode::UNAUTHORIZED
                }
                OAuthErrorCode::AccessDenied | OAuthErrorCode::InsufficientScope => {
                    StatusCode::FORBIDDEN
                }
                OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        let mut response = oauth_error(status, e.code, &e.description);
        let headers = response.headers_mut();
        if let Some(secs) = e.retry_after {
            set_retry_after(headers, secs);
        }
        match e.code {
            // RFC 6749 §5.2: a failed client authentication is answered with the scheme to use.
            OAuthErrorCode::InvalidClient => {
                if let Ok(value) = HeaderValue::from_str(&format!(r#"Basic realm="{REALM}""#)) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            OAuthErrorCode::InvalidToken => {
                set_challenge(headers, Challenge::InvalidToken(&e.description));
            }
            _ => {}
        }
        response
    }
}

/// An API error on its way out.
pub struct ApiReply(pub ApiError);

impl From<ApiError> for ApiReply {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<gatehouse_core::StoreError> for ApiReply {
    fn from(e: gatehouse_core::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiReply {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match &e {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(TokenProblem::InsufficientScope(_)) | ApiError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut problem = Problem::new(status, e.to_string());
        if let ApiError::Validation(errors) = &e {
            problem = problem.with_errors(serde_json::json!(errors));
        }
        let mut response = problem.into_response();
        if let ApiError::Unauthorized(token_problem) = &e {
            let challenge = match token_problem {
                TokenProblem::Missing => Challenge::Bare,
                TokenProblem::Invalid(d) => Challenge::InvalidToken(d),
                TokenProblem::InsufficientScope(d) => Challenge::InsufficientScope {
                    description: d,
                    scope: None,
                },
            };
            set_challenge(response.headers_mut(), challenge);
        }
        response
    }
}

pub async fn not_found() -> Response {
    ApiReply(ApiError::NotFound("no such resource".into())).into_response()
}
