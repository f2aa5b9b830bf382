//! The contract's bodies as axum responses, the one JSON body extractor, and the one layer that
//! gives framework errors (an unrouted method, a bad query string, a timeout) a proper body.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::{Challenge, ErrorResponse, OAuthErrorCode, PROBLEM_CONTENT_TYPE, Problem};

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A problem response with `detail`.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    Problem::new(status, detail).into_response()
}

/// An OAuth error body (RFC 6749 §5.2) with the caching headers §5.1 asks for.
pub fn oauth_error(status: StatusCode, code: OAuthErrorCode, description: &str) -> Response {
    let body = ErrorResponse::new(code, description);
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Sets `WWW-Authenticate` to `challenge`.
pub fn set_challenge(headers: &mut HeaderMap, challenge: Challenge<'_>) {
    if let Ok(value) = HeaderValue::from_str(&challenge.to_string()) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
}

/// Sets `Retry-After` to `seconds`, replacing the default a 503 carries.
pub fn set_retry_after(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// Bodies of the JSON APIs are small.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A JSON body (`application/json` or `+json`, at most [`JSON_LIMIT`] bytes).
pub struct JsonBody<T>(pub T);

/// Why a JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRejection {
    #[error("the body must be application/json")]
    NotJson,
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read")]
    Unreadable,
    /// Not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// Well-formed JSON of the wrong shape; `field` is the one serde names, or `body`.
    #[error("{detail}")]
    Shape { field: String, detail: String },
}

impl BodyRejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unreadable | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Shape { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        let problem = Problem::new(self.status(), self.to_string());
        match &self {
            Self::Shape { field, detail } => problem
                .with_errors(serde_json::json!([{ "field": field, "detail": detail }]))
                .into_response(),
            _ => problem.into_response(),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = BodyRejection;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = media_type(request.headers())
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if !json {
            return Err(BodyRejection::NotJson);
        }
        let body = read_body(request, JSON_LIMIT)
            .await
            .map_err(|too_large| match too_large {
                true => BodyRejection::TooLarge(JSON_LIMIT),
                false => BodyRejection::Unreadable,
            })?;
        serde_json::from_slice(&body).map(JsonBody).map_err(|e| {
            let detail = e.to_string();
            match e.classify() {
                serde_json::error::Category::Data => BodyRejection::Shape {
                    field: field_named_in(&detail).unwrap_or("body").to_owned(),
                    detail,
                },
                _ => BodyRejection::Malformed(detail),
            }
        })
    }
}

/// The media type of the request, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// The whole body, at most `limit` bytes; `Err(true)` when it is longer.
pub async fn read_body(request: Request, limit: usize) -> Result<axum::body::Bytes, bool> {
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return true;
                }
                source = err.source();
            }
            false
        })
}

/// serde names a field in backticks when it is missing, unknown or repeated.
fn field_named_in(message: &str) -> Option<&str> {
    ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
}

/// How a framework error is answered: as a problem, or in the OAuth error form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorForm {
    Problem,
    OAuth,
}

/// Gives a body to an error response the framework made rather than a handler: a method the
/// route does not take, a body over a limit, a timeout, a query string that does not parse.
/// Responses with a JSON body already, pages (HTML), and successes pass untouched.
pub async fn describe_bare_error(response: Response, form: ErrorForm) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !(status.is_client_error() || status.is_server_error())
        || content_type.contains("json")
        || content_type.starts_with("text/html")
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let said = if content_type.starts_with("text/plain") {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    } else {
        String::new()
    };
    let detail = if !said.is_empty() {
        said
    } else {
        match status {
            StatusCode::METHOD_NOT_ALLOWED => "this resource does not accept that HTTP method",
            StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                "the request took too long; try again"
            }
            _ => "the request could not be handled",
        }
        .to_owned()
    };
    let mut replaced = match form {
        ErrorForm::Problem => problem(status, detail),
        ErrorForm::OAuth => {
            let code = if status.is_server_error() {
                OAuthErrorCode::TemporarilyUnavailable
            } else {
                OAuthErrorCode::InvalidRequest
            };
            oauth_error(status, code, &detail)
        }
    };
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_fields_serde_names() {
        assert_eq!(
            field_named_in("missing field `password` at line 1 column 2"),
            Some("password")
        );
        assert_eq!(field_named_in("unknown field `x`, expected `y`"), Some("x"));
        assert_eq!(
            field_named_in("invalid type: integer `7`, expected a string"),
            None
        );
    }

    #[tokio::test]
    async fn bare_errors_get_bodies_and_keep_allow() {
        let bare = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET")
            .body(axum::body::Body::empty())
            .unwrap();
        let described = describe_bare_error(bare, ErrorForm::Problem).await;
        assert_eq!(described.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(described.headers()[header::ALLOW], "GET");
        assert_eq!(
            described.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
        let plain = (StatusCode::BAD_REQUEST, "Failed to parse the query").into_response();
        let described = describe_bare_error(plain, ErrorForm::OAuth).await;
        let body = axum::body::to_bytes(described.into_body(), 4096)
            .await
            .unwrap();
        let body: ErrorResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "invalid_request");
        assert_eq!(
            body.error_description.as_deref(),
            Some("Failed to parse the query")
        );
    }
}
