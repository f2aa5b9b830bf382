//! The authorization server's HTTP face (axum): the OAuth endpoints (token, registration, JWKS,
//! discovery), people's account endpoints, health, metrics and the generated OpenAPI document.
//!
//! [`start`] runs it with the loops that keep a node current. Handlers parse requests strictly,
//! call `gatehouse-core`, and turn its typed errors into HTTP in one place (`error.rs`), with the
//! bodies and challenges of the wire contract (`gatehouse-proto`). This crate must not know how anything is stored, nor contain protocol
//! decisions of its own: those belong to the core.

mod error;
mod extract;
pub mod limits;
mod metrics;
mod openapi;
mod routes;
mod run;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse_core::AuthService;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use metrics::install_metrics;
pub use run::{RunningServer, ServerSettings, start};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<AuthService>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub limits: Arc<limits::RateLimits>,
    /// Turns true when the server begins to shut down; long-lived streams end then, so draining
    /// does not wait on them forever.
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    pub fn new(
        service: Arc<AuthService>,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        limits: Arc<limits::RateLimits>,
    ) -> Self {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        Self {
            service,
            metrics,
            limits,
            stopping,
            stop: Arc::new(stop),
        }
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut stopping = self.stopping.clone();
        async move {
            // An error means the sender is gone, which is shutdown too.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The whole application: routes, docs, and the layers every request passes.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = routes::api(state.clone()).split_for_parts();
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi);
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    api.merge(docs)
        .fallback(error::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(extract::JSON_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::per_ip,
        ))
        .layer(axum::middleware::from_fn(error::describe_bare_errors))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.stop.clone();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await
}
