//! The five reference services that run behind the gateway: crypto rates, currency exchange,
//! role-aware messages, orders, and posts with votes. Each is an axum `Router` with its own tables
//! (prefixed with its name, with their own migration history) in the store the authorization
//! server uses, and its own OpenAPI document at `/api/<service>/openapi.json`.
//!
//! Each verifies tokens itself with the toolkit (the gateway is not its only line). It must not
//! know the authorization server's code or tables: only tokens and the issuer's URL.
//!
//! Beside them, [`shop`] is the reference web application (a backend-for-frontend that signs
//! people in with the code flow and shops through the gateway), and [`rates_client`] is the
//! reference machine client: it registers itself and reads the rates through the gateway.

mod common;
pub mod fx;
pub mod messages;
pub mod orders;
pub mod posts;
pub mod rates;
pub mod rates_client;
pub mod shop;

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
    Shop,
}

impl App {
    pub const ALL: [App; 6] = [
        App::Rates,
        App::Fx,
        App::Messages,
        App::Orders,
        App::Posts,
        App::Shop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            App::Rates => "rates",
            App::Fx => "fx",
            App::Messages => "messages",
            App::Orders => "orders",
            App::Posts => "posts",
            App::Shop => "shop",
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
                format!("no app {text:?}; the apps are rates, fx, messages, orders, posts, shop")
            })
    }
}

/// The services' settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsSettings {
    pub rates: rates::RatesSettings,
    pub orders: orders::OrdersSettings,
    pub shop: shop::ShopSettings,
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
        // Pages, not an API: its own error pages rather than problem bodies.
        App::Shop => return shop::router(db, verifier, &settings.shop).await,
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

/// What every service answers besides its own statuses: the token guard's 401, 403 and 503, the
/// JSON body extractor's 400 and 413, and what the gateway in front adds (its rate limits, and
/// paths it refuses to forward).
pub(crate) const SERVICE_RESPONSES: gatehouse_proto::openapi::CommonResponses =
    gatehouse_proto::openapi::CommonResponses {
        error_body: |_| gatehouse_proto::openapi::ErrorBody::Problem,
        json_body: &[
            (
                400,
                "The body is missing, not application/json, not valid JSON, or a field is \
                 missing or invalid",
            ),
            (413, "The body is larger than the limit"),
        ],
        oauth_body: &[],
        bearer: &[gatehouse_proto::openapi::CommonResponses::UNAUTHORIZED],
        scoped: &[(
            403,
            "The token lacks the scope (or role) this needs, or is not a person's where one is \
             needed",
        )],
        path_params: &[(
            400,
            "A path parameter is malformed, or the gateway refused the path (dot segments, \
             encoded slashes)",
        )],
        every: &[
            (
                429,
                "Over the rate limit the gateway applies to this route, where one is set; see \
                 Retry-After",
            ),
            (
                503,
                "The service cannot reach its store or cannot check tokens now; see Retry-After",
            ),
        ],
    };

pub(crate) async fn openapi<D: utoipa::OpenApi>() -> impl IntoResponse {
    Json(D::openapi())
}
