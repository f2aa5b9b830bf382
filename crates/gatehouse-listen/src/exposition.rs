//! Who may read the process's Prometheus figures, and the answer they get.
//!
//! The figures say how busy a node is, which clients it serves and how many sign-ins fail: not
//! for the public. By default they are served only on a listener of their own (loopback); a
//! service's public listener serves them only to a bearer of the operator's metrics token.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_proto::bearer::Challenge;
use gatehouse_proto::web::{problem, set_challenge};
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

/// The token a scraper presents (`Authorization: Bearer …`). Never printed.
#[derive(Clone)]
pub struct MetricsToken(Arc<str>);

impl MetricsToken {
    /// `None` for an empty token: an empty secret would let anyone in.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(token.into()))
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            });
        presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(self.0.as_bytes())))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

/// Who may read the figures on one listener.
#[derive(Clone, Debug, Default)]
pub enum MetricsAccess {
    /// Not served here: `404`, as for any path the listener does not know. The default for a
    /// service's public listener.
    #[default]
    Hidden,
    /// Served to a bearer of the token; anyone else gets `401` with a Bearer challenge.
    Token(MetricsToken),
    /// Served to anyone who can connect: for a listener only the scraper can reach.
    Open,
}

impl MetricsAccess {
    /// For a service's public listener: only with a token, hidden without one.
    pub fn public(token: Option<MetricsToken>) -> Self {
        token.map_or(Self::Hidden, Self::Token)
    }

    /// For the listener of its own: the token if one is set, else open.
    pub fn dedicated(token: Option<MetricsToken>) -> Self {
        token.map_or(Self::Open, Self::Token)
    }
}

/// The Prometheus text exposition of `handle`, if `access` lets the request's sender read it.
pub fn metrics_response(
    handle: &PrometheusHandle,
    access: &MetricsAccess,
    headers: &HeaderMap,
) -> Response {
    match access {
        MetricsAccess::Hidden => problem(StatusCode::NOT_FOUND, "no such resource"),
        MetricsAccess::Token(token) if !token.admits(headers) => {
            let mut refused = problem(
                StatusCode::UNAUTHORIZED,
                "the metrics need the operator's metrics token as a bearer token",
            );
            set_challenge(refused.headers_mut(), Challenge::Bare);
            refused
        }
        MetricsAccess::Token(_) | MetricsAccess::Open => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
    }
}

/// The metrics listener's routes: `GET /metrics`, and `GET /healthz` for its own liveness.
pub fn metrics_router(handle: PrometheusHandle, access: MetricsAccess) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move |headers: HeaderMap| async move {
                metrics_response(&handle, &access, &headers)
            }),
        )
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn handle() -> PrometheusHandle {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_public_listener_hides_the_figures_without_a_token() {
        let access = MetricsAccess::public(None);
        let answer = metrics_response(&handle(), &access, &HeaderMap::new());
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        let answer = metrics_response(&handle(), &access, &bearer("anything"));
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_the_right_token_reads_them() {
        let access = MetricsAccess::public(MetricsToken::new("s3cret-token"));
        for refused in [
            HeaderMap::new(),
            bearer("s3cret-toke"),
            bearer("s3cret-token-"),
            bearer(""),
        ] {
            let answer = metrics_response(&handle(), &access, &refused);
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                answer.headers()[header::WWW_AUTHENTICATE],
                r#"Bearer realm="gatehouse""#
            );
        }
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic czNjcmV0LXRva2Vu"),
        );
        assert_eq!(
            metrics_response(&handle(), &access, &basic).status(),
            StatusCode::UNAUTHORIZED
        );
        let answer = metrics_response(&handle(), &access, &bearer("s3cret-token"));
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4"
        );
    }

    #[test]
    fn a_dedicated_listener_is_open_unless_a_token_is_set() {
        let open = MetricsAccess::dedicated(None);
        assert_eq!(
            metrics_response(&handle(), &open, &HeaderMap::new()).status(),
            StatusCode::OK
        );
        let guarded = MetricsAccess::dedicated(MetricsToken::new("t"));
        assert_eq!(
            metrics_response(&handle(), &guarded, &HeaderMap::new()).status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn an_empty_token_is_no_token() {
        assert!(MetricsToken::new("  ").is_none());
        assert!(matches!(
            MetricsAccess::public(MetricsToken::new("")),
            MetricsAccess::Hidden
        ));
    }
}
