//! Why a request was refused, answered the way RFC 6750 and RFC 9457 say: a `WWW-Authenticate`
//! challenge and an `application/problem+json` body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The realm named in every Bearer challenge.
pub const REALM: &str = "gatehouse";

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

    fn challenge(&self) -> Option<String> {
        let description = quote_safe(self.detail());
        match self {
            Self::MissingToken => Some(format!(r#"Bearer realm="{REALM}""#)),
            Self::InvalidToken(_) => Some(format!(
                r#"Bearer realm="{REALM}", error="invalid_token", error_description="{description}""#
            )),
            Self::InsufficientScope { required, .. } => Some(format!(
                r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="{description}", scope="{}""#,
                quote_safe(required)
            )),
            Self::MissingRole { .. } => Some(format!(
                r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="{description}""#
            )),
            Self::Unavailable => None,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = problem(status, self.detail());
        if let Some(value) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An RFC 9457 problem response, shaped like every other error Gatehouse answers.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::BAD_GATEWAY => "bad-gateway",
        StatusCode::GATEWAY_TIMEOUT => "gateway-timeout",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        _ => "error",
    };
    let body = serde_json::json!({
        "type": format!("urn:gatehouse:problem:{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// RFC 6750 §3: challenge attributes may not hold `"` or `\`.
fn quote_safe(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}
