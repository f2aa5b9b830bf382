//! `/admin`: clients and users, for the `admin` role only.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_core::service::{
    Actor, AdminUserView, ClientPatch, ClientView, CreatedClient, KeyInfo, NewClient, Page,
    PageRequest, RotatedSecret, UserPatch,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiReply;
use crate::extract::{Ctx, JsonBody, required_bearer};

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, patch_client, delete_client))
        .routes(routes!(rotate_client_secret))
        .routes(routes!(list_users))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// Runs before any extractor, so a caller without the role learns nothing from body validation.
async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let actor = match required_bearer(request.headers()) {
        Ok(token) => state.service.authorize_admin(token).await,
        Err(e) => Err(e),
    };
    match actor {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(e) => ApiReply(e).into_response(),
    }
}

fn page_request(
    query: Result<Query<PageRequest>, QueryRejection>,
) -> Result<PageRequest, ApiReply> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiReply(ApiError::BadRequest(e.body_text().into())))
}

/// Lists clients, in id order.
#[utoipa::path(get, path = "/admin/clients", tag = "admin", params(PageRequest),
    responses((status = 200, body = Page<ClientView>), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_clients(
    State(state): State<AppState>,
    query: Result<Query<PageRequest>, QueryRejection>,
) -> Result<Json<Page<ClientView>>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_list_clients(&page_request(query)?)
            .await?,
    ))
}

/// Creates a client; its secret is in this answer only.
#[utoipa::path(post, path = "/admin/clients", tag = "admin", request_body = NewClient,
    responses((status = 201, body = CreatedClient), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn create_client(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    JsonBody(new): JsonBody<NewClient>,
) -> Result<impl IntoResponse, ApiReply> {
    let created = state.service.admin_create_client(&actor, new, &ctx).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One client (never its secret).
#[utoipa::path(get, path = "/admin/clients/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn get_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, ApiReply> {
    Ok(Json(state.service.admin_get_client(&id).await?))
}

/// Changes a client: block or unblock (blocking kills its tokens and sessions), name, scopes, roles.
#[utoipa::path(patch, path = "/admin/clients/{id}", tag = "admin", params(("id" = String, Path)),
    request_body = ClientPatch,
    responses((status = 200, body = ClientView), (status = 404), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn patch_client(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<ClientPatch>,
) -> Result<Json<ClientView>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_patch_client(&actor, &id, patch, &ctx)
            .await?,
    ))
}

/// Deletes a client and its sessions.
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404), (status = 409), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn delete_client(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiReply> {
    state.service.admin_delete_client(&actor, &id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new secret; the old one keeps working for the configured overlap.
#[utoipa::path(post, path = "/admin/clients/{id}/rotate-secret", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404), (status = 409), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn rotate_client_secret(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiReply> {
    let rotated = state
        .service
        .admin_rotate_client_secret(&actor, &id, &ctx)
        .await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(rotated),
    ))
}

/// Lists users, in id order.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(PageRequest),
    responses((status = 200, body = Page<AdminUserView>), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    query: Result<Query<PageRequest>, QueryRejection>,
) -> Result<Json<Page<AdminUserView>>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_list_users(&page_request(query)?)
            .await?,
    ))
}

/// One user (never the password hash).
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = AdminUserView), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiReply> {
    Ok(Json(state.service.admin_get_user(&id).await?))
}

/// Changes a user: block or unblock (blocking ends every session and token), roles.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    request_body = UserPatch,
    responses((status = 200, body = AdminUserView), (status = 404), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn patch_user(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<UserPatch>,
) -> Result<Json<AdminUserView>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_patch_user(&actor, &id, patch, &ctx)
            .await?,
    ))
}

/// Deletes a user and their sessions.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404), (status = 409), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn delete_user(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiReply> {
    state.service.admin_delete_user(&actor, &id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signing keys, newest first, with their status.
#[utoipa::path(get, path = "/admin/keys", tag = "admin",
    responses((status = 200, body = Vec<KeyInfo>), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_keys(State(state): State<AppState>) -> Result<Json<Vec<KeyInfo>>, ApiReply> {
    Ok(Json(state.service.list_signing_keys().await?))
}

/// Rotates the signing key: published now, signing after the activation delay.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin",
    responses((status = 201, body = KeyInfo), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn rotate_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
) -> Result<impl IntoResponse, ApiReply> {
    let key = state.service.rotate_signing_key(&actor, &ctx).await?;
    Ok((StatusCode::CREATED, Json(key)))
}
