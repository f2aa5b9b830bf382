//! Tracing on the real binary: W3C `traceparent` accepted by the gateway and passed on to the
//! upstream as a child of its own span, a request id and trace id on the request's log lines
//! (JSON), and the spans exported over OTLP to a receiver started here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use common::fakes::upstream;
use serde_json::Value;

/// An OTLP/HTTP receiver: every JSON body posted to /v1/traces.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| async move {
            if let Ok(json) = serde_json::from_slice::<Value>(&body) {
                kept.lock().unwrap().push(json);
            }
            axum::Json(serde_json::json!({}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Every span the receiver got: (trace id, span id, parent span id, name).
fn spans(received: &[Value]) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    received
        .iter()
        .flat_map(|body| {
            body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|resource| {
            resource["scopeSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
        .map(|span| {
            (
                text(&span["traceId"]).to_lowercase(),
                text(&span["spanId"]).to_lowercase(),
                text(&span["parentSpanId"]).to_lowercase(),
                text(&span["name"]),
            )
        })
        .collect()
}

fn traceparent_parts(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

/// `gatehouse serve` with one anonymous route, `/traced`, to `echo`; its log lines (JSON) go to
/// `log` in `dir`.
fn serve_with_route(
    dir: &std::path::Path,
    echo: &common::fakes::Upstream,
    env: &[(&str, &str)],
) -> (common::Running, std::path::PathBuf) {
    let routes = dir.join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "[[route]]\nprefix = \"/traced\"\nupstream = \"{}\"\nanonymous = true\n",
            echo.url
        ),
    )
    .unwrap();
    let log_path = dir.join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let data = dir.join("data");
    let mut all = vec![
        ("GATEHOUSE_LOG", "info"),
        ("GATEHOUSE_LOG_FORMAT", "json"),
        ("GATEHOUSE_GATEWAY__ROUTES_FILE", routes.to_str().unwrap()),
    ];
    all.extend_from_slice(env);
    let mut command = common::gatehouse(&["serve", "--data-dir", data.to_str().unwrap()], &all);
    command.args([
        "--auth-listen",
        "127.0.0.1:0",
        "--gateway-listen",
        "127.0.0.1:0",
    ]);
    command.args(["--apps-ports-from", "0"]);
    (
        common::spawn_ready_logging_to(command, Stdio::from(log)),
        log_path,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_passes_the_trace_on_logs_its_ids_and_exports_its_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, received) = receiver().await;
    let echo = upstream().await;
    let (node, log_path) = serve_with_route(
        dir.path(),
        &echo,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_SERVICE_NAME", "gatehouse-under-test"),
            // A long schedule: what the receiver gets, it gets from the flush at stop.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    let gateway = node.gateway.clone().unwrap();
    let http = reqwest::Client::new();

    // A caller's trace: the upstream is called as a child of the gateway's span in it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = http
        .get(format!("{gateway}/traced/one"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("tracestate", "vendor=opaque")
        .header("x-request-id", "req-one-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-request-id"], "req-one-42");
    let seen = echo.last();
    let (seen_trace, gateway_span, flags) =
        traceparent_parts(seen.headers["traceparent"].to_str().unwrap());
    assert_eq!(seen_trace, trace_id, "the same trace");
    assert_ne!(
        gateway_span, caller_span,
        "the gateway's own span is the parent"
    );
    assert_ne!(gateway_span, "0000000000000000");
    assert_eq!(flags, "01");
    assert_eq!(seen.headers["tracestate"], "vendor=opaque");
    assert_eq!(seen.headers["x-request-id"], "req-one-42");

    // No trace, or a malformed one: a new trace begins at the gateway.
    for sent in [None, Some("00-XYZ-00f067aa0ba902b7-01")] {
        let mut request = http.get(format!("{gateway}/traced/two"));
        if let Some(value) = sent {
            request = request.header("traceparent", value);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
        let value = echo.last().headers["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        let (fresh, span, _) = traceparent_parts(&value);
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, trace_id);
        assert_ne!(fresh, "0".repeat(32));
        assert_eq!(span.len(), 16);
    }

    // Stopping the node sends what is left of the spans.
    assert_eq!(common::terminate(node).code(), Some(0));
    let exported = spans(&received.lock().unwrap());
    let gateway_request = exported
        .iter()
        .find(|(trace, span, _, name)| {
            trace == trace_id && span == &gateway_span && name == "request"
        })
        .unwrap_or_else(|| panic!("no exported span {gateway_span} in {exported:?}"));
    assert_eq!(
        gateway_request.2, caller_span,
        "exported as the caller's child"
    );

    // The access log line of that request names its trace and request ids.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line: Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["target"] == "gatehouse::access" && line["span"]["request_id"] == "req-one-42"
        })
        .unwrap_or_else(|| panic!("no access line for req-one-42 in:\n{log}"));
    assert_eq!(line["span"]["trace_id"], trace_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_export_the_callers_trace_passes_unchanged_and_ids_are_kept_or_made() {
    let dir = tempfile::tempdir().unwrap();
    let echo = upstream().await;
    let (node, log_path) = serve_with_route(dir.path(), &echo, &[]);
    let gateway = node.gateway.clone().unwrap();
    let http = reqwest::Client::new();

    // Nothing is exported: the caller's traceparent is the upstream's parent, as it was sent.
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = http
        .get(format!("{gateway}/traced/a"))
        .header("traceparent", sent)
        .header("tracestate", "vendor=opaque")
        .header("x-http-method-override", "DELETE")
        .header("x-forwarded-ssl", "on")
        .header("x-original-url", "/admin")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let made = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!made.is_empty());
    let seen = echo.last();
    assert_eq!(seen.headers["traceparent"], sent);
    assert_eq!(seen.headers["tracestate"], "vendor=opaque");
    assert_eq!(
        seen.headers["x-request-id"],
        made.as_str(),
        "one id, both ways"
    );
    for claim in [
        "x-http-method-override",
        "x-forwarded-ssl",
        "x-original-url",
    ] {
        assert!(
            !seen.headers.contains_key(claim),
            "{claim} reached the upstream"
        );
    }

    // None sent, or two: none passed on, and no tracestate without its trace.
    let twice = http
        .get(format!("{gateway}/traced/b"))
        .header("traceparent", sent)
        .header("traceparent", sent)
        .header("tracestate", "vendor=opaque");
    for request in [http.get(format!("{gateway}/traced/b")), twice] {
        assert_eq!(request.send().await.unwrap().status(), 200);
        let seen = echo.last();
        assert!(!seen.headers.contains_key("traceparent"));
        assert!(!seen.headers.contains_key("tracestate"));
    }

    // A request id that is not reasonable is replaced; the authorization server returns one too.
    let answer = http
        .get(format!("{gateway}/traced/c"))
        .header("x-request-id", "has spaces in it")
        .send()
        .await
        .unwrap();
    let replaced = answer.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, "has spaces in it");
    assert!(replaced.bytes().all(|b| b.is_ascii_graphic()));
    let health = http
        .get(format!("{}/healthz", node.base))
        .header("x-request-id", "probe-7")
        .send()
        .await
        .unwrap();
    assert_eq!(health.headers()["x-request-id"], "probe-7");

    // Every access line names the request and a trace, exported or not.
    assert_eq!(common::terminate(node).code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let access: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "gatehouse::access")
        .collect();
    assert_eq!(access.len(), 4, "{log}");
    for line in &access {
        assert_eq!(
            line["span"]["trace_id"].as_str().unwrap().len(),
            32,
            "{line}"
        );
        assert!(line["span"]["request_id"].is_string(), "{line}");
    }
    assert_eq!(access[0]["span"]["request_id"], made.as_str());
    assert_eq!(
        access[0]["span"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}
