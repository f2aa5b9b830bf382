//! One span per request on every listener, carrying the request's trace id (W3C Trace Context:
//! the caller's, or a new one) and request id, so every log line written while serving it names
//! both; with an OpenTelemetry layer installed the span is exported as a child of the caller's.
//! The context for calls the request makes onward is left in its extensions.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_proto::trace::{TRACEPARENT, TraceParent, write_hex};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `X-Request-Id` header's name.
pub const REQUEST_ID: &str = "x-request-id";

/// The trace context a request's onward calls carry, in its extensions when there is one: the
/// caller's, with this request's span as the parent when that span is exported, or unchanged
/// when it is not (a made-up parent would hang the callee's spans off nothing). Absent when the
/// caller sent none and nothing is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTrace {
    pub parent: TraceParent,
    /// Whether this is the caller's trace (its `tracestate` belongs with it) or one begun here.
    pub continued: bool,
}

impl RequestTrace {
    /// The `traceparent` value for a call made on this request's behalf.
    pub fn traceparent(&self) -> HeaderValue {
        HeaderValue::from_str(&self.parent.to_header()).unwrap_or(HeaderValue::from_static(""))
    }
}

/// The longest path a span records: enough to read, not a way to pin memory in a queue.
const MAX_RECORDED_PATH: usize = 256;

/// The caller's `X-Request-Id` when it is reasonable (1 to 128 visible ASCII characters), else
/// a new one: a per-process random prefix and a counter, unique without a system call.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(REQUEST_ID).filter(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
    }) {
        return given.clone();
    }
    let mut id = [0u8; 32];
    let (prefix, count) = id.split_at_mut(16);
    write_hex(&made_id_prefix()[..8], prefix);
    write_hex(&next_count().to_be_bytes(), count);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
}

/// A trace id for the log lines of a request that belongs to no trace (none came in, nothing is
/// exported): it is never sent anywhere, so the process's random prefix and a counter do, with
/// no system call per request.
fn log_only_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&made_id_prefix()[8..]);
    id[8..].copy_from_slice(&next_count().to_be_bytes());
    id
}

/// 16 random bytes drawn once per process: the first half begins made request ids, the second
/// log-only trace ids.
fn made_id_prefix() -> &'static [u8; 16] {
    static PREFIX: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    PREFIX.get_or_init(random::<16>)
}

fn next_count() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn random<const N: usize>() -> [u8; N] {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; N];
    // Ids, not secrets: a failed source leaves zeros, which the checks below replace.
    let _ = SystemRandom::new().fill(&mut bytes);
    if bytes.iter().all(|b| *b == 0) {
        bytes[N - 1] = 1;
    }
    bytes
}

/// The middleware: the span, the request id (set on the request, so every layer and handler
/// sees the same one), and [`RequestTrace`].
pub(crate) async fn trace_request(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    // Exactly one valid `traceparent` continues the caller's trace (W3C Trace Context §3.2).
    let mut given = headers.get_all(TRACEPARENT).iter();
    let incoming = match (given.next(), given.next()) {
        (Some(value), None) => value.to_str().ok().and_then(TraceParent::parse),
        _ => None,
    };
    let id = request_id(headers);
    headers.insert(REQUEST_ID, id.clone());
    let path = request.uri().path();
    let path = match path.char_indices().nth(MAX_RECORDED_PATH) {
        Some((end, _)) => &path[..end],
        None => path,
    };
    let span = tracing::info_span!(
        target: "gatehouse::request",
        "request",
        trace_id = tracing::field::Empty,
        request_id = %id.to_str().unwrap_or("-"),
        method = %request.method(),
        // The path only: a query may carry codes or tokens.
        path = %path,
    );
    if let Some(parent) = incoming {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let exported = span.context().span().span_context().clone();
    let onward = if exported.is_valid() {
        Some(RequestTrace {
            parent: TraceParent {
                trace_id: exported.trace_id().to_bytes(),
                parent_id: exported.span_id().to_bytes(),
                flags: exported.trace_flags().to_u8(),
            },
            continued: incoming.is_some(),
        })
    } else {
        incoming.map(|parent| RequestTrace {
            parent,
            continued: true,
        })
    };
    // Recorded once, when known: the exported or the caller's trace, else one for the logs only.
    let trace_id = onward.map_or_else(log_only_trace_id, |trace| trace.parent.trace_id);
    let mut trace_hex = [0u8; 32];
    span.record(
        "trace_id",
        tracing::field::display(write_hex(&trace_id, &mut trace_hex)),
    );
    if let Some(onward) = onward {
        request.extensions_mut().insert(onward);
    }
    let mut response = next.run(request).instrument(span).await;
    // Every answer names its request, a panic's 500 included.
    response.headers_mut().entry(REQUEST_ID).or_insert(id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_request_ids_are_distinct_hex_and_callers_reasonable_ones_are_kept() {
        let none = HeaderMap::new();
        let (a, b) = (request_id(&none), request_id(&none));
        assert_ne!(a, b);
        for id in [&a, &b] {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 32);
            assert!(
                text.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        let mut given = HeaderMap::new();
        given.insert(REQUEST_ID, HeaderValue::from_static("probe-7"));
        assert_eq!(request_id(&given), "probe-7");
        given.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&given), "has space");
    }

    #[test]
    fn log_only_trace_ids_are_distinct_and_never_zero() {
        let (a, b) = (log_only_trace_id(), log_only_trace_id());
        assert_ne!(a, b);
        assert!(a.iter().any(|byte| *byte != 0));
        assert_ne!(a[..8], made_id_prefix()[..8], "apart from made request ids");
    }
}
