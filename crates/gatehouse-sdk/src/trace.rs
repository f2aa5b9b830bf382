//! Passing the caller's trace on (W3C Trace Context) from a service that uses `tracing` with an
//! OpenTelemetry layer, as services usually do.

use axum::http::HeaderValue;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use gatehouse_proto::trace::{TRACEPARENT, TraceParent};

/// The `traceparent` for a call made from the current `tracing` span: its OpenTelemetry trace,
/// with the span as the parent. `None` without an OpenTelemetry layer (nothing to pass on).
/// [`crate::TokenClient::send`] adds it to every request that carries none of its own.
pub fn current_traceparent() -> Option<HeaderValue> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    if !span.is_valid() {
        return None;
    }
    let parent = TraceParent {
        trace_id: span.trace_id().to_bytes(),
        parent_id: span.span_id().to_bytes(),
        flags: span.trace_flags().to_u8(),
    };
    HeaderValue::from_str(&parent.to_header()).ok()
}
