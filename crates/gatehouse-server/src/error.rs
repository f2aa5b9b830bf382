//! The one place where errors become HTTP: OAuth errors as RFC 6749 §5.2 JSON, bearer-token
//! failures with RFC 6750 challenges, everything else as RFC 9457 problem details.

use std::any::Any;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::{ApiError, OAuthError, OAuthErrorCode, TokenProblem};
use serde_json::json;

pub const REALM: &str = "gatehouse";

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
                OAuthErrorCode::AccessDenied => StatusCode::FORBIDDEN,
                OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        let body = json!({ "error": e.code.as_str(), "error_description": e.description });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        match e.code {
            // RFC 6749 §5.2: a failed client authentication is answered with the scheme to use.
            OAuthErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="gatehouse""#),
                );
            }
            OAuthErrorCode::InvalidToken => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    r#"Bearer realm="{REALM}", error="invalid_token", error_description="{}""#,
                    quote_safe(&e.description)
                )) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
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
        let (status, kind) = match &e {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::Unauthorized(TokenProblem::InsufficientScope(_)) | ApiError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut body = json!({
            "type": format!("urn:gatehouse:problem:{kind}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": e.to_string(),
        });
        if let ApiError::Validation(errors) = &e {
            body["errors"] = json!(errors);
        }
        let mut response = problem_response(status, body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::Unauthorized(problem) = &e {
            let challenge = match problem {
                TokenProblem::Missing => format!(r#"Bearer realm="{REALM}""#),
                TokenProblem::Invalid(d) => format!(
                    r#"Bearer realm="{REALM}", error="invalid_token", error_description="{}""#,
                    quote_safe(d)
                ),
                TokenProblem::InsufficientScope(d) => format!(
                    r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="{}""#,
                    quote_safe(d)
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// An `application/problem+json` response with the given body.
pub fn problem_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// RFC 6750 §3: error_description may not contain `"` or `\`.
fn quote_safe(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}

pub async fn not_found() -> Response {
    ApiReply(ApiError::NotFound("no such resource".into())).into_response()
}

/// Gives a proper body to errors made by the framework rather than by a handler (a method the
/// route does not take, a body over the limit, a timeout): OAuth endpoints in their error form,
/// everything else as a problem. Handler errors are JSON already and pass untouched.
pub async fn describe_bare_errors(request: Request, next: Next) -> Response {
    let oauth_path = request.uri().path().starts_with("/oauth2/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this resource does not accept that HTTP method",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::SERVICE_UNAVAILABLE => "the request took too long; try again",
        _ => "the request could not be handled",
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = if oauth_path {
        let code = if status.is_server_error() {
            OAuthErrorCode::TemporarilyUnavailable
        } else {
            OAuthErrorCode::InvalidRequest
        };
        let mut r = OAuthReply(OAuthError::new(code, detail)).into_response();
        *r.status_mut() = status;
        r
    } else {
        problem_response(
            status,
            json!({
                "type": "about:blank",
                "title": status.canonical_reason().unwrap_or("Error"),
                "status": status.as_u16(),
                "detail": detail,
            }),
        )
    };
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        replaced
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    replaced
}

/// A panic is a bug; the caller gets a plain 500 problem and the details stay in the log.
pub fn panic_response(_err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    ApiReply(ApiError::Internal).into_response()
}
