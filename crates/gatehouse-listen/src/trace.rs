//! One span per request on every listener, carrying the request's trace id (W3C Trace Context:
//! the caller's, or a new one) and request id, so every log line written while serving it names
//! both; with an OpenTelemetry layer installed the span is exported as a child of the caller's.
//! The context for calls the request makes onward is left in its extensions.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_proto::trace::{TRACEPARENT, TraceParent, hex};
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
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = headers.get(REQUEST_ID).filter(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
    }) {
        return given.clone();
    }
    let prefix = PREFIX.get_or_init(|| hex(&random::<8>()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix}{n:016x}")).unwrap_or(HeaderValue::from_static("-"))
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
        request_id = %String::from_utf8_lossy(id.as_bytes()),
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
    let trace_id = onward.map_or_else(random::<16>, |trace| trace.parent.trace_id);
    span.record("trace_id", hex(&trace_id));
    if let Some(onward) = onward {
        request.extensions_mut().insert(onward);
    }
    let mut response = next.run(request).instrument(span).await;
    // Every answer names its request, a panic's 500 included.
    response.headers_mut().entry(REQUEST_ID).or_insert(id);
    response
}
