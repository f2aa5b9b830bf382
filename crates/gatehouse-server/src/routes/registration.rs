use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use gatehouse_core::OAuthError;
use gatehouse_proto::registration::{ClientMetadata, RegisteredClient, RegistrationRequest};

use crate::AppState;
use crate::error::OAuthReply;
use crate::extract::{Ctx, bearer_token};

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    bearer_token(headers).map_err(|p| OAuthError::invalid_token(p.to_string()))
}

/// RFC 7591 wants the error JSON for bad metadata; a JSON body of the wrong shape is
/// `invalid_client_metadata`, not a generic problem.
fn parse_metadata(headers: &HeaderMap, body: &[u8]) -> Result<RegistrationRequest, OAuthError> {
    let media = crate::extract::media_type(headers);
    if media.as_deref() != Some("application/json") {
        return Err(OAuthError::invalid_request(
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::invalid_client_metadata(format!("the metadata is malformed: {e}")))
}

fn no_store<T: IntoResponse>(body: T) -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body,
    )
}

/// Registers a client (RFC 7591): a machine client, or an application people sign in to through
/// the browser. The secret (none for a public client) and registration access token are shown once.
#[utoipa::path(post, path = "/oauth2/register", tag = "oauth2",
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered", body = RegisteredClient),
        (status = 400, description = "invalid_client_metadata, invalid_redirect_uri or invalid_request"),
        (status = 401, description = "A valid initial access token is required"),
        (status = 429, description = "Over the registration rate limit; see Retry-After"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, OAuthReply> {
    state.service.registration_allowed(bearer(&headers)?)?;
    let request = parse_metadata(&headers, &body)?;
    let registered = state.service.register_client(request, &ctx).await?;
    Ok((StatusCode::CREATED, no_store(Json(registered))))
}

/// Reads a client's registration (RFC 7592 §2.1), with its registration access token.
#[utoipa::path(get, path = "/oauth2/register/{client_id}", tag = "oauth2",
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientMetadata), (status = 401, description = "Bad registration access token")),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, OAuthReply> {
    let metadata = state
        .service
        .read_registration(&client_id, bearer(&headers)?)
        .await?;
    Ok(no_store(Json(metadata)))
}

/// Replaces a client's metadata (RFC 7592 §2.2).
#[utoipa::path(put, path = "/oauth2/register/{client_id}", tag = "oauth2",
    params(("client_id" = String, Path)), request_body = RegistrationRequest,
    responses((status = 200, body = ClientMetadata), (status = 400), (status = 401)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, OAuthReply> {
    let token = bearer(&headers)?;
    let request = parse_metadata(&headers, &body)?;
    let metadata = state
        .service
        .update_registration(&client_id, token, request, &ctx)
        .await?;
    Ok(no_store(Json(metadata)))
}

/// Deletes a client (RFC 7592 §2.3).
#[utoipa::path(delete, path = "/oauth2/register/{client_id}", tag = "oauth2",
    params(("client_id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, OAuthReply> {
    state
        .service
        .delete_registration(&client_id, bearer(&headers)?, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
