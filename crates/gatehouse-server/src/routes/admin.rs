//! `/admin`: clients and users, for the `admin` role only.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ApiError;
use gatehouse_core::service::Actor;
use gatehouse_proto::admin::{
    AdminUserView, AuditEventView, AuditQuery, ClientPatch, ClientView, CreatedClient, KeyInfo,
    NewClient, Page, PageRequest, RevokeAll, RevokedAll, RoleUpdate, RoleView, RotatedSecret,
    SessionQuery, SessionView, UserPatch,
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
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(revoke_all))
        .routes(routes!(list_audit))
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

/// A query string that does not fit is a 400 problem naming what is wrong.
fn query_of<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiReply> {
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
        state.service.admin_list_clients(&query_of(query)?).await?,
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

/// Changes a client: block or unblock (blocking kills its tokens and sessions), name, scopes, roles,
/// redirect URIs, consent.
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
        state.service.admin_list_users(&query_of(query)?).await?,
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

/// Every role with its default scopes.
#[utoipa::path(get, path = "/admin/roles", tag = "admin",
    responses((status = 200, body = Vec<RoleView>), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_roles(State(state): State<AppState>) -> Result<Json<Vec<RoleView>>, ApiReply> {
    Ok(Json(state.service.admin_list_roles().await?))
}

/// Creates a role.
#[utoipa::path(post, path = "/admin/roles", tag = "admin", request_body = RoleView,
    responses((status = 201, body = RoleView), (status = 409), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn create_role(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    JsonBody(role): JsonBody<RoleView>,
) -> Result<impl IntoResponse, ApiReply> {
    let created = state.service.admin_create_role(&actor, role, &ctx).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Replaces a role's description and scopes; holders get the new scopes on their next token.
#[utoipa::path(put, path = "/admin/roles/{name}", tag = "admin", params(("name" = String, Path)),
    request_body = RoleUpdate,
    responses((status = 200, body = RoleView), (status = 404), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn update_role(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    JsonBody(update): JsonBody<RoleUpdate>,
) -> Result<Json<RoleView>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_update_role(&actor, &name, update, &ctx)
            .await?,
    ))
}

/// Deletes a role no user or client holds; `admin` and `user` cannot be deleted.
#[utoipa::path(delete, path = "/admin/roles/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 204), (status = 404), (status = 409), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn delete_role(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiReply> {
    state.service.admin_delete_role(&actor, &name, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sessions (refresh-token families), of one user or client when given, in id order.
#[utoipa::path(get, path = "/admin/sessions", tag = "admin", params(SessionQuery),
    responses((status = 200, body = Page<SessionView>), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_sessions(
    State(state): State<AppState>,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<Page<SessionView>>, ApiReply> {
    Ok(Json(
        state.service.admin_list_sessions(&query_of(query)?).await?,
    ))
}

/// Revokes one session: its refresh tokens stop working.
#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn revoke_session(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiReply> {
    state
        .service
        .admin_revoke_session(&actor, &id, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of a user or client and kills every token issued to it so far.
#[utoipa::path(post, path = "/admin/revoke-all", tag = "admin", request_body = RevokeAll,
    responses((status = 200, body = RevokedAll), (status = 404), (status = 422), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn revoke_all(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Ctx(ctx): Ctx,
    JsonBody(request): JsonBody<RevokeAll>,
) -> Result<Json<RevokedAll>, ApiReply> {
    Ok(Json(
        state
            .service
            .admin_revoke_all(&actor, &request.subject, &ctx)
            .await?,
    ))
}

/// The audit log, newest first, filtered by subject, type and time.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Page<AuditEventView>), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<AuditEventView>>, ApiReply> {
    Ok(Json(
        state.service.admin_list_audit(&query_of(query)?).await?,
    ))
}
