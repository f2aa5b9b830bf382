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
        .init();
}

/// `text` or `json` lines on stderr, at `info` unless `GATEHOUSE_LOG` says otherwise.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
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
