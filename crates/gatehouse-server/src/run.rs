//! Running the authorization server: its listener and the loops that keep a node current (the
//! change-log reader, key reloads, purges, forgetting idle rate limits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::AuthService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::limits::{RateLimitConfig, RateLimits};

/// What the authorization server's HTTP face and loops run with (the service has its own
/// [`gatehouse_core::AuthConfig`]).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub rate_limits: RateLimitConfig,
    /// How often the change log is read when no commit wakes the reader.
    pub change_poll: Duration,
    /// OpenAPI documents of other services on the origin the docs are read through (under
    /// `serve`, the apps behind the gateway): `/docs` lists them after the server's own.
    pub api_documents: Vec<gatehouse_look::docs::ApiDocument>,
    /// The process's budget of open connections and the listener timeouts.
    pub connections: gatehouse_listen::Connections,
    /// Who may read `GET /metrics` on this listener (by default no one: the figures have a
    /// listener of their own).
    pub metrics: gatehouse_listen::MetricsAccess,
    /// Serve over TLS (HTTP/2 by ALPN) instead of plain HTTP.
    pub tls: Option<gatehouse_listen::Tls>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            rate_limits: RateLimitConfig::default(),
            change_poll: Duration::from_millis(250),
            api_documents: Vec::new(),
            connections: gatehouse_listen::Connections::default(),
            metrics: gatehouse_listen::MetricsAccess::default(),
            tls: None,
        }
    }
}

/// A running authorization server.
pub struct RunningServer {
    pub address: SocketAddr,
    pub service: Arc<AuthService>,
    /// Ends when the server has stopped: after `shutdown`, or because it failed.
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Serves `service` on `listener` and starts the node's loops, until `shutdown` resolves; then
/// requests in flight finish and the loops stop. Whatever must exist before the first request
/// (the first administrator) is made on `service` before this is called.
pub fn start(
    listener: TcpListener,
    settings: ServerSettings,
    service: Arc<AuthService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    let address = listener.local_addr()?;
    let limits = Arc::new(RateLimits::new(&settings.rate_limits));
    let loops = vec![
        // Changes made through other nodes or the CLI apply here within a second.
        tokio::spawn(service.clone().follow_changes(settings.change_poll)),
        tokio::spawn(reload_keys_periodically(service.clone())),
        tokio::spawn(purge_periodically(service.clone())),
        tokio::spawn(forget_idle_limits(limits.clone())),
    ];
    let state = AppState::new(service.clone(), crate::install_metrics(), limits)
        .with_api_documents(settings.api_documents)
        .with_metrics_access(settings.metrics);
    let connections = settings.connections;
    let tls = settings.tls;
    let task = tokio::spawn(async move {
        let served = crate::serve(listener, state, connections, tls, shutdown).await;
        for task in loops {
            task.abort();
        }
        served
    });
    Ok(RunningServer {
        address,
        service,
        task,
    })
}

/// A safety net under the change log for key rotations made through other nodes. The activation
/// delay (default 120 s) is longer than this period plus the JWKS cache lifetime, so every node
/// publishes a new key before any node signs with it even if a change-log entry were lost.
async fn reload_keys_periodically(service: Arc<AuthService>) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = service.reload_keys().await {
            tracing::warn!(error = %e, "reloading the signing keys failed");
        }
    }
}

async fn forget_idle_limits(limits: Arc<RateLimits>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        limits.forget_idle();
    }
}

/// Expired deny entries and refresh families are of no use; remove them now and then.
async fn purge_periodically(service: Arc<AuthService>) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match service.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "purged expired revocations and sessions"),
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
    }
}
