//! Role-aware welcome messages: one answer for administrators, one for other people, one naming
//! the machine client.

use gatehouse_proto::openapi::BearerSecurity;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use gatehouse_sdk::{Authenticated, TokenVerifier};
use serde::Serialize;

use crate::SERVICE_RESPONSES;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Welcome {
    pub message: String,
}

/// The welcome for whoever holds the token.
#[utoipa::path(get, path = "/api/messages/welcome", tag = "messages",
    responses((status = 200, body = Welcome), (status = 401, description = "No valid token")),
    security(("bearer" = [])))]
async fn welcome(caller: Authenticated) -> Json<Welcome> {
    let message = match &caller.roles {
        Some(_) if caller.has_role("admin") => "Welcome, Admin! You have full access.".to_owned(),
        Some(_) => "Welcome, Authenticated user! Limited access.".to_owned(),
        None => format!(
            "Welcome, machine client {}! You are authenticated.",
            caller.client_id
        ),
    };
    Json(Welcome { message })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse messages", description = "Role-aware welcome messages"),
    paths(welcome),
    components(schemas(Welcome)),
    modifiers(&BearerSecurity, &SERVICE_RESPONSES)
)]
pub struct Doc;

pub fn router(verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route("/api/messages/welcome", get(welcome))
        .route("/api/messages/openapi.json", get(crate::openapi::<Doc>))
        .with_state(verifier)
}
