use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use gatehouse_core::ApiError;
use gatehouse_proto::UserInfo;

use crate::AppState;
use crate::error::ApiReply;
use crate::extract::required_bearer;

/// The signed-in person's claims (OpenID Connect Core §5.3), by the token's scopes: `profile`
/// gives `preferred_username`, `email` gives `email` and `email_verified`. Needs a person's
/// access token issued for scope `openid`, in the `Authorization` header.
#[utoipa::path(get, path = "/oauth2/userinfo", tag = "oauth2",
    responses(
        (status = 200, body = UserInfo),
        (status = 401, description = "Missing or invalid token (RFC 6750)", content_type = "application/problem+json"),
        (status = 403, description = "Not a person's token, or not issued for scope openid", content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiReply> {
    answer(&state, &headers).await
}

/// The same claims by POST (OpenID Connect Core §5.3.1).
#[utoipa::path(post, path = "/oauth2/userinfo", tag = "oauth2",
    responses(
        (status = 200, body = UserInfo),
        (status = 401, description = "Missing or invalid token (RFC 6750)", content_type = "application/problem+json"),
        (status = 403, description = "Not a person's token, or not issued for scope openid", content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiReply> {
    answer(&state, &headers).await
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<axum::response::Response, ApiReply> {
    let token = required_bearer(headers)?;
    let claims = state
        .service
        .userinfo(token)
        .await
        .map_err(ApiError::Unauthorized)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(claims)).into_response())
}
