use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use gatehouse_proto::web::problem;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers: `{\"status\": \"ready\"}`", body = Object),
        (status = 503, description = "The store is unreachable"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.service.store().ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not reachable",
            )
        }
    }
}

/// Prometheus text exposition, for a bearer of the operator's metrics token. Without a token
/// configured the figures are served only on the metrics listener, and this answers 404.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
        (status = 401, description = "The metrics token is missing or wrong"),
        (status = 404, description = "No metrics token is configured: the figures are served on the metrics listener only"),
    ),
    security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    gatehouse_listen::metrics_response(&state.metrics, &state.metrics_access, &headers)
}
