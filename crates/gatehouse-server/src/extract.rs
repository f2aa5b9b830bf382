//! Strict request parsing: form bodies for the OAuth endpoints, JSON bodies for the APIs, bearer
//! and Basic credentials, and where a request came from. Every failure is a typed error, never a
//! framework default.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use base64::Engine;
use gatehouse_core::{ApiError, OAuthError, RequestContext, TokenProblem};
pub use gatehouse_proto::bearer_token;
pub use gatehouse_proto::web::media_type;
use gatehouse_proto::web::read_body;

use crate::error::OAuthReply;

/// OAuth requests are small; anything bigger is not a token request.
pub const FORM_LIMIT: usize = 16 * 1024;

/// The parameters of an `application/x-www-form-urlencoded` OAuth request. Repeated parameters are
/// refused (RFC 6749 §3.1), empty ones too, and a single empty one is treated as absent.
#[derive(Debug, Default)]
pub struct OAuthForm(pub HashMap<String, String>);

impl OAuthForm {
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthReply;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if media_type(request.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into());
        }
        let body = read_body(request, FORM_LIMIT).await.map_err(|too_large| {
            if too_large {
                OAuthError::too_large(FORM_LIMIT)
            } else {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
        // A repeated parameter is refused, even an empty one (RFC 6749 §3.1).
        let pairs = gatehouse_look::single_valued_pairs(&body)
            .map_err(|refused| OAuthError::invalid_request(refused.to_string()))?;
        Ok(Self(
            pairs
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        ))
    }
}

pub use gatehouse_proto::web::{JSON_LIMIT, JsonBody};

/// Where the request came from, for sessions and the audit log.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Self(RequestContext { ip, user_agent }))
    }
}

/// A bearer token that must be present (RFC 6750 §2.1).
pub fn required_bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    match bearer_token(headers) {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(ApiError::Unauthorized(TokenProblem::Missing)),
        Err(e) => Err(ApiError::Unauthorized(TokenProblem::Invalid(
            e.to_string().into(),
        ))),
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: both parts form-urlencoded
/// before base64). `Ok(None)` when no Basic header was sent.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let text = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "client authentication must use the Basic scheme",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    if id.is_empty() {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}
