//! The authorization server's HTTP face (axum): the OAuth endpoints (token, registration, JWKS,
//! discovery, userinfo), people's account endpoints, health, metrics and the generated OpenAPI
//! document, with the hosted pages of `gatehouse-web` (authorization, sign-in, consent, account,
//! logout) mounted beside them.
//!
//! [`start`] runs it with the loops that keep a node current. Handlers parse requests strictly,
//! call `gatehouse-core`, and turn its typed errors into HTTP in one place (`error.rs`), with the
//! bodies and challenges of the wire contract (`gatehouse-proto`). This crate must not know how anything is stored, nor contain protocol
//! decisions of its own: those belong to the core.

mod edges;
mod error;
mod extract;
pub mod limits;
mod metrics;
mod openapi;
#[cfg(test)]
mod properties;
mod routes;
mod run;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse_core::AuthService;
use tokio::net::TcpListener;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;

/// What [`ServerSettings::api_documents`] lists.
pub use gatehouse_look::docs::ApiDocument;
pub use metrics::install_metrics;
pub use run::{RunningServer, ServerSettings, start};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<AuthService>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Who may read them on this listener.
    metrics_access: gatehouse_listen::MetricsAccess,
    pub limits: Arc<limits::RateLimits>,
    /// Turns true when the server begins to shut down; long-lived streams end then, so draining
    /// does not wait on them forever.
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The other OpenAPI documents the docs pages list after the server's own.
    api_documents: Arc<Vec<gatehouse_look::docs::ApiDocument>>,
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
            metrics_access: gatehouse_listen::MetricsAccess::default(),
            limits,
            stopping,
            stop: Arc::new(stop),
            api_documents: Arc::default(),
        }
    }

    /// Lists `documents` on the docs pages after the server's own.
    pub fn with_api_documents(mut self, documents: Vec<gatehouse_look::docs::ApiDocument>) -> Self {
        self.api_documents = Arc::new(documents);
        self
    }

    /// Lets `access` read `GET /metrics` (hidden by default).
    pub fn with_metrics_access(mut self, access: gatehouse_listen::MetricsAccess) -> Self {
        self.metrics_access = access;
        self
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
    let docs = docs(openapi, &state.api_documents);
    api.merge(docs)
        .merge(gatehouse_web::pages(state.service.clone()))
        .fallback(error::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(extract::JSON_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            edges::edges,
        ))
        // The request's span and id come from the listener (gatehouse-listen), which keeps or
        // makes the id and returns it on every answer.
        .layer(SetSensitiveHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .with_state(state)
}

/// `/openapi.json`, and the docs pages listing it first and then `others`.
fn docs<S: Clone + Send + Sync + 'static>(
    openapi: utoipa::openapi::OpenApi,
    others: &[gatehouse_look::docs::ApiDocument],
) -> Router<S> {
    use gatehouse_look::docs::{ApiDocument, router};
    // Written once: the document does not change while the server runs.
    let body = axum::body::Bytes::from(serde_json::to_vec(&openapi).unwrap_or_default());
    let own = ApiDocument::new("server", "/openapi.json");
    let documents = own.into_iter().chain(others.iter().cloned()).collect();
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { (json, body.clone()) }),
        )
        .merge(router("Gatehouse", documents))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish. `connections` is the
/// process's budget of open connections, shared with its other listeners; with `tls` the
/// listener speaks HTTPS.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    connections: gatehouse_listen::Connections,
    tls: Option<gatehouse_listen::Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.stop.clone();
    let router = router(state);
    gatehouse_listen::serve_tls(listener, "auth", router, connections, tls, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await
}
