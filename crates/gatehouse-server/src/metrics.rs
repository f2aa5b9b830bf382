//! Prometheus metrics: requests by route and status, latency histograms, tokens issued by grant.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "gatehouse_http_requests_total";
pub const HTTP_DURATION: &str = "gatehouse_http_request_duration_seconds";
pub const TOKENS_ISSUED: &str = "gatehouse_tokens_issued_total";

/// Installs the process-wide recorder once (the `metrics` facade has one global recorder) and
/// returns the handle that renders it.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Counts and times every request under its route template (never the raw path, which would let
/// callers create unbounded label values) and its method (any other than the nine of RFC 9110
/// and PATCH counts as `other`, for the same reason: hyper accepts any token as a method).
pub fn record(route: Option<&MatchedPath>, method: &Method, status: StatusCode, started: Instant) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    RequestHandles::with(route, method_label(method), status.as_u16(), |handles| {
        handles.requests.increment(1);
        handles.duration.record(started.elapsed().as_secs_f64());
    });
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// One route, method and status's metric handles. Registering looks the labels up in the
/// recorder's map (allocating them); each thread keeps the handles it has used instead, so a
/// request costs two atomic updates.
struct RequestHandles {
    route: Box<str>,
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestHandles {
    fn with(route: &str, method: &'static str, status: u16, use_them: impl FnOnce(&Self)) {
        use std::cell::RefCell;
        thread_local! {
            static KEPT: RefCell<Vec<RequestHandles>> = const { RefCell::new(Vec::new()) };
        }
        // A bound on what one thread keeps; past it (an unusual spread of methods and statuses)
        // handles are looked up each time, as the recorder would.
        const MOST_KEPT: usize = 256;
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            let found = kept
                .iter()
                .position(|h| h.status == status && h.method == method && *h.route == *route);
            match found {
                Some(index) => use_them(&kept[index]),
                None => {
                    let handles = Self::register(route, method, status);
                    use_them(&handles);
                    if kept.len() < MOST_KEPT {
                        kept.push(handles);
                    }
                }
            }
        });
    }

    fn register(route: &str, method: &'static str, status: u16) -> Self {
        let labels = [("method", method.to_owned()), ("route", route.to_owned())];
        Self {
            route: route.into(),
            method,
            status,
            requests: metrics::counter!(
                HTTP_REQUESTS,
                &[
                    labels[0].clone(),
                    labels[1].clone(),
                    ("status", status.to_string()),
                ]
            ),
            duration: metrics::histogram!(HTTP_DURATION, &labels),
        }
    }
}

pub fn token_issued(grant: &'static str) {
    use std::cell::RefCell;
    thread_local! {
        // Per grant, as in `RequestHandles`: a handle kept, not a lookup per token.
        static KEPT: RefCell<Vec<(&'static str, metrics::Counter)>> =
            const { RefCell::new(Vec::new()) };
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((_, counter)) = kept.iter().find(|(name, _)| *name == grant) {
            return counter.increment(1);
        }
        let counter = metrics::counter!(TOKENS_ISSUED, "grant" => grant);
        counter.increment(1);
        kept.push((grant, counter));
    });
}
