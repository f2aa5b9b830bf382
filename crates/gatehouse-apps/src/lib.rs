//! The five reference services that run behind the gateway: crypto rates, currency exchange,
//! role-aware messages, orders, and posts with votes. Each is an axum `Router` with its own tables
//! (prefixed with its name, with their own migration history) in the store the authorization
//! server uses, and its own OpenAPI document at `/api/<service>/openapi.json`.
//!
//! Each verifies tokens itself with the toolkit (the gateway is not its only line). It must not
//! know the authorization server's code or tables: only tokens and the issuer's URL.
//!
//! Beside them, [`rates_client`] is the reference machine client: it registers itself and reads
//! the rates through the gateway.

mod common;
pub mod fx;
pub mod messages;
pub mod orders;
pub mod posts;
pub mod rates;
pub mod rates_client;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gatehouse_proto::web::{ErrorForm, describe_bare_error};
use gatehouse_sdk::{TokenVerifier, problem};
use serde::{Deserialize, Serialize};

pub use common::{AppError, Db};

/// The services, by the name `gatehouse app NAME` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    Rates,
    Fx,
    Messages,
    Orders,
    Posts,
}

impl App {
    pub const ALL: [App; 5] = [App::Rates, App::Fx, App::Messages, App::Orders, App::Posts];

    pub fn name(self) -> &'static str {
        match self {
            App::Rates => "rates",
            App::Fx => "fx",
            App::Messages => "messages",
            App::Orders => "orders",
            App::Posts => "posts",
        }
    }
}

impl std::str::FromStr for App {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        App::ALL
            .into_iter()
            .find(|app| app.name() == text)
            .ok_or_else(|| {
                format!("no app {text:?}; the apps are rates, fx, messages, orders, posts")
            })
    }
}

/// The services' settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsSettings {
    pub rates: rates::RatesSettings,
    pub orders: orders::OrdersSettings,
}

/// Prepares `app` (migrations, seed data, background work) and returns its router.
pub async fn router(
    app: App,
    db: &Db,
    verifier: &Arc<TokenVerifier>,
    settings: &AppsSettings,
) -> Result<axum::Router, AppError> {
    let (db, verifier) = (db.clone(), verifier.clone());
    let router = match app {
        App::Rates => rates::router(db, verifier, &settings.rates).await?,
        App::Fx => fx::router(db, verifier).await?,
        App::Messages => messages::router(verifier),
        App::Orders => orders::router(db, verifier, &settings.orders).await?,
        App::Posts => posts::router(db, verifier).await?,
    };
    Ok(router
        .fallback(|| async { AppError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "this resource does not accept that method",
            )
        })
        // axum's own rejections (a bad query string, a path that is not UTF-8) get problem bodies.
        .layer(axum::middleware::map_response(|response| {
            describe_bare_error(response, ErrorForm::Problem)
        })))
}

pub(crate) async fn openapi<D: utoipa::OpenApi>() -> impl IntoResponse {
    Json(D::openapi())
}
