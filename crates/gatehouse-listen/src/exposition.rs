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
use gatehouse_proto::bearer::{Challenge, bearer_token};
use gatehouse_proto::web::{problem, set_challenge};
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

/// The token a scraper presents (`Authorization: Bearer …`), kept as its SHA-256 so that
/// comparing takes the same time whatever was presented, its length included. Never printed.
#[derive(Clone)]
pub struct MetricsToken(Arc<[u8; 32]>);

/// Shorter tokens are refused: a guessable token is no protection.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

impl MetricsToken {
    /// `None` for a token shorter than [`MIN_METRICS_TOKEN_LEN`] (after trimming).
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (token.len() >= MIN_METRICS_TOKEN_LEN).then(|| Self(Arc::new(digest(token))))
    }

    /// What the request presented: nothing, the token, or something else.
    fn check(&self, headers: &HeaderMap) -> Presented {
        match bearer_token(headers) {
            Ok(None) => Presented::Nothing,
            Ok(Some(token)) if bool::from(digest(token).as_slice().ct_eq(self.0.as_slice())) => {
                Presented::Token
            }
            Ok(Some(_)) | Err(_) => Presented::Wrong,
        }
    }
}

enum Presented {
    Nothing,
    Token,
    Wrong,
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    );
    out
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
        MetricsAccess::Token(token) => match token.check(headers) {
            Presented::Token => figures(handle),
            Presented::Nothing => refuse(
                "the metrics need the operator's metrics token as a bearer token",
                Challenge::Bare,
            ),
            Presented::Wrong => refuse(
                "the metrics token is wrong",
                Challenge::InvalidToken("the metrics token is wrong"),
            ),
        },
        MetricsAccess::Open => figures(handle),
    }
}

fn refuse(detail: &str, challenge: Challenge<'_>) -> Response {
    let mut refused = problem(StatusCode::UNAUTHORIZED, detail);
    set_challenge(refused.headers_mut(), challenge);
    refused
}

fn figures(handle: &PrometheusHandle) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle.render(),
    )
        .into_response()
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
        let access = MetricsAccess::public(MetricsToken::new("s3cret-token-for-scrapers"));
        let answer = metrics_response(&handle(), &access, &HeaderMap::new());
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="gatehouse""#
        );
        for wrong in [
            bearer("s3cret-token-for-scraper"),
            bearer("s3cret-token-for-scrapers-"),
            bearer(""),
        ] {
            let answer = metrics_response(&handle(), &access, &wrong);
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
            assert!(
                answer.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .contains(r#"error="invalid_token""#)
            );
        }
        // The token twice is no token.
        let mut twice = bearer("s3cret-token-for-scrapers");
        twice.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token-for-scrapers"),
        );
        assert_eq!(
            metrics_response(&handle(), &access, &twice).status(),
            StatusCode::UNAUTHORIZED
        );
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic czNjcmV0LXRva2VuLWZvci1zY3JhcGVycw=="),
        );
        assert_eq!(
            metrics_response(&handle(), &access, &basic).status(),
            StatusCode::UNAUTHORIZED
        );
        let answer = metrics_response(&handle(), &access, &bearer("s3cret-token-for-scrapers"));
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
        let guarded = MetricsAccess::dedicated(MetricsToken::new("a-long-enough-token"));
        assert_eq!(
            metrics_response(&handle(), &guarded, &HeaderMap::new()).status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn a_short_token_is_no_token() {
        assert!(MetricsToken::new("  ").is_none());
        assert!(MetricsToken::new("fifteen-chars-x").is_none());
        assert!(MetricsToken::new(" sixteen-chars-xx ").is_some());
        assert!(matches!(
            MetricsAccess::public(MetricsToken::new("")),
            MetricsAccess::Hidden
        ));
    }
}
