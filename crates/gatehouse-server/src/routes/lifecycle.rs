use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use gatehouse_proto::Introspection;

use super::token::client_auth;
use crate::AppState;
use crate::error::OAuthReply;
use crate::extract::{Ctx, OAuthForm};
use crate::limits::Endpoint;

/// Revokes an access or refresh token (RFC 7009). Unknown, malformed and expired tokens answer 200.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "token, optional token_type_hint; client credentials as at the token endpoint"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "RFC 6749 §5.2 error, e.g. the token belongs to another client"),
        (status = 401, description = "Client authentication failed"),
        (status = 429, description = "Over a rate limit; see Retry-After"),
    ),
    security((), ("client_basic" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<impl IntoResponse, OAuthReply> {
    let auth = client_auth(&headers, &mut form)?;
    let admit = state.limits.admission(Endpoint::Revoke, ctx.ip.as_deref());
    state
        .service
        .revoke(auth, form.take("token"), &ctx, &admit)
        .await?;
    Ok([(header::CACHE_CONTROL, "no-store")])
}

/// Tells an authenticated confidential client whether a token is active, and its claims (RFC 7662).
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "token, optional token_type_hint; client credentials as at the token endpoint"),
    responses(
        (status = 200, body = Introspection),
        (status = 401, description = "Client authentication failed"),
        (status = 429, description = "Over a rate limit; see Retry-After"),
    ),
    security(("client_basic" = [])))]
pub async fn introspect(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<impl IntoResponse, OAuthReply> {
    let auth = client_auth(&headers, &mut form)?;
    let admit = state
        .limits
        .admission(Endpoint::Introspect, ctx.ip.as_deref());
    let answer = state
        .service
        .introspect(auth, form.take("token"), &admit)
        .await?;
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(answer),
    ))
}
