//! What a `gatehouse` process sets up around a node: logging, the signals that stop it, and the
//! one stop every part of a node waits on.

use anyhow::Context;

/// For one-shot commands: warnings and errors only, unless `GATEHOUSE_LOG` says otherwise.
pub fn init_logging_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours())
        .init();
}

/// Colours only for a person at a terminal: in a file or a journal the escape codes are noise,
/// and writing them costs every request's span.
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` or `json` lines on stderr, at `info` unless `GATEHOUSE_LOG` says otherwise. Each line
/// written while serving a request carries its `trace_id` and `request_id` (the span every
/// listener opens). With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) set, the spans
/// are exported too, as OTLP JSON over HTTP.
pub fn init_logging(format: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The request span is always on, whatever the filter, so every line names its request.
    let directives = std::env::var("GATEHOUSE_LOG").unwrap_or_else(|_| "info".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{directives},gatehouse::request=info"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colours());
    let lines = if format == "json" {
        lines
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        lines.boxed()
    };
    let (export, failed) = match otlp::tracer() {
        Ok(Some(tracer)) => (
            Some(tracing_opentelemetry::layer().with_tracer(tracer)),
            None,
        ),
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(export)
        .init();
    if let Some(e) = failed {
        tracing::error!(error = %e, "OTLP export of spans is off: it could not be set up");
    }
}

/// Sends the spans not yet exported; call before the process exits. Off the runtime's
/// threads: the exporter sends through the runtime while this waits.
pub async fn flush_traces() {
    let _ = tokio::task::spawn_blocking(otlp::shut_down).await;
}

mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// A tracer exporting to the collector the standard variables name, if they name one.
    pub(super) fn tracer() -> anyhow::Result<Option<SdkTracer>> {
        let configured = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
        if !configured {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_http_client(TokioHttp::new()?)
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name("gatehouse");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("gatehouse");
        let _ = PROVIDER.set(provider);
        Ok(Some(tracer))
    }

    /// Sends what is queued (shutting down flushes), waiting at most two seconds for an
    /// unreachable collector.
    pub(super) fn shut_down() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown_with_timeout(std::time::Duration::from_secs(2));
        }
    }

    /// The exporter's HTTP client: the exporter runs on a thread of its own, outside the
    /// runtime, so each request is sent from the runtime it was made in.
    #[derive(Debug)]
    struct TokioHttp {
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
    }

    impl TokioHttp {
        fn new() -> anyhow::Result<Self> {
            Ok(Self {
                client: reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .timeout(std::time::Duration::from_secs(10))
                    .build()?,
                runtime: tokio::runtime::Handle::try_current()?,
            })
        }
    }

    #[async_trait::async_trait]
    impl opentelemetry_http::HttpClient for TokioHttp {
        async fn send_bytes(
            &self,
            request: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
            let client = self.client.clone();
            let sent = self.runtime.spawn(async move {
                let request = reqwest::Request::try_from(request)?;
                let response = client.execute(request).await?;
                let mut answer = http::Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    *headers = response.headers().clone();
                }
                let body = response.bytes().await?;
                Ok::<_, opentelemetry_http::HttpError>(answer.body(body)?)
            });
            sent.await?
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are registered here, before the node says it is
/// ready, so a signal that arrives right after start still drains instead of killing the process.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down: finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing in-flight requests");
        })
    }
}

/// Resolves once `stopping` turns true (or its sender is gone).
pub async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// SIGHUP reads the listeners' certificate files again: the next handshakes use the new
/// certificate, open connections keep theirs, and a broken file keeps the old one. Registered on
/// every node, so a SIGHUP never stops one (its default action), TLS or not.
pub fn reload_tls_on_hangup(listeners: Vec<gatehouse_listen::Tls>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                for tls in &listeners {
                    let cert = tls.files().cert_file.display();
                    match tls.reload() {
                        Ok(()) => tracing::info!(%cert, "TLS certificate reloaded"),
                        Err(e) => tracing::error!(
                            error = %e,
                            "the TLS files were refused; the certificate in force stays"
                        ),
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(listeners);
    Ok(())
}
