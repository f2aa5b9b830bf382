use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use gatehouse_proto::account::{NewUser, PasswordChange, UserView};

use crate::AppState;
use crate::error::ApiReply;
use crate::extract::{Ctx, JsonBody, required_bearer};

/// Signs up a person (role `user`).
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "The username is taken", content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", content_type = "application/problem+json"),
        (status = 429, description = "Over the sign-up rate limit; see Retry-After", content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks are waiting; see Retry-After", content_type = "application/problem+json"),
    ))]
pub async fn sign_up(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<impl IntoResponse, ApiReply> {
    let user = state.service.sign_up(new, &ctx).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/users/me", tag = "users",
    responses((status = 200, body = UserView), (status = 401, description = "Missing or invalid token")),
    security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<UserView>, ApiReply> {
    let token = required_bearer(&headers)?;
    let (user, _) = state.service.user_from_token(token).await?;
    Ok(Json(UserView::from(&user)))
}

/// Changes the caller's password; every session of the account ends.
#[utoipa::path(put, path = "/users/me/password", tag = "users", request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401),
        (status = 422),
        (status = 503, description = "Too many password checks are waiting; see Retry-After", content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    JsonBody(change): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiReply> {
    let token = required_bearer(&headers)?;
    let (user, _) = state.service.user_from_token(token).await?;
    state.service.change_password(&user, change, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
