//! Gatehouse's API gateway: matches a request to a route, checks its token locally with the
//! toolkit's [`gatehouse_sdk::TokenVerifier`] (keys, revocation feed, verdict cache), applies the
//! route's scopes, roles and rate limit, and streams it to the upstream with the caller's identity.
//! The same decision is offered to other proxies as a forward-auth check (`check.rs`).
//!
//! It knows the issuer only through HTTP (metadata, JWKS, revocation feed): never the store or the
//! authorization server's code.

mod check;
mod config;
mod forward;
mod limits;
mod metrics;
#[cfg(test)]
mod properties;
mod proxy;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{any, get};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use gatehouse_sdk::TokenVerifier;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

pub use config::{ConfigError, GatewayFile, GatewaySection, RouteRule, RouteSpec, substitute};
pub use forward::{UpstreamTlsError, upstream_tls};

use crate::limits::RouteLimits;
use crate::metrics::RouteMetrics;

/// One route as served: its rule, its rate limiter and its metric handles.
pub(crate) struct Route {
    pub(crate) rule: RouteRule,
    pub(crate) limits: Option<RouteLimits>,
    pub(crate) metrics: RouteMetrics,
}

/// The routes in force, swapped whole on reload; requests in flight keep the table they started with.
pub(crate) struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    fn new(rules: Vec<RouteRule>) -> Self {
        Self {
            routes: rules
                .into_iter()
                .map(|rule| {
                    Arc::new(Route {
                        limits: rule.rate_limit.as_ref().map(RouteLimits::new),
                        metrics: RouteMetrics::new(&rule.name),
                        rule,
                    })
                })
                .collect(),
        }
    }

    pub(crate) fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.rule.matches(path))
    }
}

/// A running gateway's shared state.
pub struct Gateway {
    routes: ArcSwap<RouteTable>,
    routes_file: Option<PathBuf>,
    /// `{name}` → value, replaced in the route file before it is read (for addresses known
    /// only at start, like the reference apps' ports under `serve`).
    placeholders: Vec<(String, String)>,
    verifier: Arc<TokenVerifier>,
    metrics: PrometheusHandle,
    /// Who may read them at `/_gatehouse/metrics`.
    metrics_access: gatehouse_listen::MetricsAccess,
    /// The proxies whose forward-auth checks are answered.
    forward_auth_from: Vec<ipnet::IpNet>,
    /// Whom `https://` upstreams must be certified by.
    upstream_tls: Arc<rustls::ClientConfig>,
    /// For requests that match no route.
    unmatched: RouteMetrics,
}

/// How the gateway meets the world besides its routes.
pub struct GatewayOptions {
    /// Who may read the figures at `/_gatehouse/metrics`.
    pub metrics_access: gatehouse_listen::MetricsAccess,
    /// The proxies whose forward-auth checks are answered.
    pub forward_auth_from: Vec<ipnet::IpNet>,
    /// Whom `https://` upstreams must be certified by ([`upstream_tls`]).
    pub upstream_tls: Arc<rustls::ClientConfig>,
}

impl Gateway {
    /// A gateway over `rules`; `routes_file` is where [`Gateway::reload`] reads them again.
    /// Routes that name no audience expect the verifier's ([`TokenVerifier::audience`]).
    pub fn new(
        rules: Vec<RouteRule>,
        routes_file: Option<PathBuf>,
        placeholders: Vec<(String, String)>,
        verifier: Arc<TokenVerifier>,
        metrics: PrometheusHandle,
        options: GatewayOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            routes: ArcSwap::from_pointee(RouteTable::new(rules)),
            routes_file,
            placeholders,
            verifier,
            metrics,
            metrics_access: options.metrics_access,
            forward_auth_from: options.forward_auth_from,
            upstream_tls: options.upstream_tls,
            unmatched: RouteMetrics::new("unmatched"),
        })
    }

    /// Reads the route file again. A file with a mistake is refused whole and the routes in
    /// force stay; in-flight requests finish on the table they started with.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        let Some(path) = &self.routes_file else {
            return Ok(self.routes.load().routes.len());
        };
        let rules = GatewayFile::read_with(path, &self.placeholders)?.rules()?;
        let count = rules.len();
        self.routes.store(Arc::new(RouteTable::new(rules)));
        Ok(count)
    }

    pub fn verifier(&self) -> &Arc<TokenVerifier> {
        &self.verifier
    }

    /// The gateway's own endpoints live under `/_gatehouse/`; everything else is proxied.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/_gatehouse/healthz", get(|| async { "ok" }))
            .route("/_gatehouse/readyz", get(proxy::readyz))
            .route("/_gatehouse/metrics", get(proxy::render_metrics))
            .route(check::CHECK_PATH, any(check::check))
            .route(&format!("{}/", check::CHECK_PATH), any(check::check))
            .route(
                &format!("{}/{{*original}}", check::CHECK_PATH),
                any(check::check),
            )
            .fallback(proxy::proxy)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    ///
    /// Like nginx's workers, the gateway runs one single-threaded event loop per core, all
    /// accepting on the same socket: a request and its upstream call stay on one thread, with no
    /// cross-thread wake-ups, and each loop keeps its own pool of upstream connections. The
    /// loops share `connections`, the process's budget of open connections.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        connections: gatehouse_listen::Connections,
        tls: Option<gatehouse_listen::Tls>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tokio::spawn(limits::forget_idle(Arc::downgrade(&self)));
        tokio::spawn(metrics::report_feed_silence(Arc::downgrade(&self)));
        let listener = listener.into_std()?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::with_capacity(loops);
        for index in 0..loops {
            let listener = listener.try_clone()?;
            let gateway = self.clone();
            let mut stopping = stopping.clone();
            let connections = connections.clone();
            let tls = tls.clone();
            let (done, finished) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("gateway-{index}"))
                .spawn(move || {
                    let result = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .and_then(|runtime| {
                            runtime.block_on(async move {
                                let listener = TcpListener::from_std(listener)?;
                                gatehouse_listen::serve_tls(
                                    listener,
                                    "gateway",
                                    gateway.router(),
                                    connections,
                                    tls,
                                    async move {
                                        let _ = stopping.wait_for(|stop| *stop).await;
                                    },
                                )
                                .await
                            })
                        });
                    let _ = done.send(result);
                })?;
            workers.push(finished);
        }
        // Until shutdown, or until a loop ends on its own (which is a failure): then all stop.
        let mut running: FuturesUnordered<_> = workers.into_iter().collect();
        let ended_early = tokio::select! {
            () = shutdown => None,
            Some(ended) = running.next() => Some(ended),
        };
        let _ = stop.send(true);
        let lost = || std::io::Error::other("a gateway event loop stopped unexpectedly");
        if let Some(ended) = ended_early {
            ended.map_err(|_| lost())??;
            return Err(lost());
        }
        while let Some(ended) = running.next().await {
            ended.map_err(|_| lost())??;
        }
        Ok(())
    }

    pub(crate) fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }
}
