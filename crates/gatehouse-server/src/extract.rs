//! Strict request parsing: form bodies for the OAuth endpoints, JSON bodies for the APIs, bearer
//! and Basic credentials, and where a request came from. Every failure is a typed error, never a
//! framework default.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use gatehouse_core::{ApiError, OAuthError, RequestContext, TokenProblem};
use serde::de::DeserializeOwned;

use crate::error::{ApiReply, OAuthReply};

/// OAuth requests are small; anything bigger is not a token request.
pub const FORM_LIMIT: usize = 16 * 1024;
pub const JSON_LIMIT: usize = 64 * 1024;

pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

async fn read_body(request: Request, limit: usize) -> Result<axum::body::Bytes, bool> {
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

/// The parameters of an `application/x-www-form-urlencoded` OAuth request. Repeated parameters are
/// refused (RFC 6749 §3.1) and empty ones treated as absent.
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
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(&body) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(
                    OAuthError::invalid_request(format!("parameter {name:?} is repeated")).into(),
                );
            }
        }
        Ok(Self(params))
    }
}

/// A JSON body; malformed JSON is 400, well-formed JSON of the wrong shape 422, naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiReply;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = media_type(request.headers())
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if !json {
            return Err(
                ApiError::UnsupportedMediaType("the body must be application/json".into()).into(),
            );
        }
        let body = read_body(request, JSON_LIMIT).await.map_err(|too_large| {
            if too_large {
                ApiError::TooLarge(JSON_LIMIT)
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        serde_json::from_slice(&body).map(JsonBody).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => {
                    let detail = e.to_string();
                    ApiReply(ApiError::field(field_named_in(&detail), detail))
                }
                _ => ApiReply(ApiError::BadRequest(
                    format!("the body is not valid JSON: {e}").into(),
                )),
            }
        })
    }
}

/// serde names the offending field in backticks ("missing field `password`").
fn field_named_in(message: &str) -> &'static str {
    for field in [
        "username",
        "password",
        "email",
        "current_password",
        "new_password",
        "client_name",
        "grant_types",
        "scope",
        "token_endpoint_auth_method",
        "client_id",
        "client_secret",
    ] {
        if message.contains(&format!("`{field}`")) {
            return field;
        }
    }
    "body"
}

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

fn authorization(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(AUTHORIZATION)
}

/// The bearer token of `Authorization: Bearer …` (RFC 6750 §2.1), if that is what was sent.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, TokenProblem> {
    let Some(value) = authorization(headers) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| TokenProblem::Invalid("the Authorization header is not valid text".into()))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(TokenProblem::Invalid(
            "the Authorization header must be: Bearer <token>".into(),
        )),
    }
}

/// A bearer token that must be present.
pub fn required_bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    match bearer_token(headers) {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(ApiError::Unauthorized(TokenProblem::Missing)),
        Err(problem) => Err(ApiError::Unauthorized(problem)),
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: both parts form-urlencoded
/// before base64). `Ok(None)` when no Basic header was sent.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = authorization(headers) else {
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
