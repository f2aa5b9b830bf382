//! How every Gatehouse listener (authorization server, gateway, reference apps, machine client)
//! accepts and serves connections: HTTP/1 and h2c on one port, graceful shutdown, and the edges
//! every service needs alike. Slow clients are timed out (request head, idle connection,
//! request body); open connections are capped for the whole process, with a share per peer
//! address, and refused at once over a cap so file descriptors never run out; HEAD is answered
//! wherever GET is; a panic in a handler becomes a 500 problem body and a metric. Who may read
//! the process's Prometheus figures, on a service's listener or one of their own, is decided here
//! too.
//!
//! It serves whatever axum [`Router`] it is given, with the peer's address as
//! `ConnectInfo<SocketAddr>`. It must not know OAuth, routes or stores: those belong to the
//! services that call [`serve`].

mod exposition;
mod limits;
mod tls;
mod trace;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

pub use exposition::{
    MIN_METRICS_TOKEN_LEN, MetricsAccess, MetricsToken, metrics_response, metrics_router,
};
pub use limits::{Connections, ListenerLimits};
pub use tls::{ArrivedOverTls, Tls, TlsError, TlsFiles, crypto_provider, read_certificates};
pub use trace::{REQUEST_ID, RequestTrace, request_id};

use crate::limits::{Admission, RateLimitedWarning};
use crate::watch::{Activity, DeadlineBody, Watched};

/// What a refused connection is told before it is closed, if its socket takes it at once.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
connection: close\r\nretry-after: 1\r\n\r\n";

/// How long accepting pauses after an error such as "too many open files", so that the loop
/// neither spins nor gives up while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, closes idle
/// connections and lets requests in flight finish. `name` labels the listener's metrics and
/// log lines (`auth`, `gateway`, `app:rates`, ...). Every listener of a process is given a
/// clone of the same `connections`.
pub async fn serve(
    listener: TcpListener,
    name: &str,
    router: Router,
    connections: Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, name, router, connections, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (HTTP/2 by ALPN, or HTTP/1.1). The TLS handshake
/// must finish within the request-head timeout, as a plain request's head must.
pub async fn serve_tls(
    listener: TcpListener,
    name: &str,
    router: Router,
    connections: Connections,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = connections.limits().clone();
    let meters = Meters::new(name);
    let app = edges(router, &meters);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    // HTTP/2 (by ALPN, or prior knowledge): a connection carries at most 64 requests at once
    // (hyper's default is 200, which would multiply the per-address connection cap). No pings
    // of our own: their answers would count as activity and keep idle connections open.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let accept_errors = RateLimitedWarning::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                meters.accept_errors.increment(1);
                if accept_errors.due() {
                    tracing::warn!(listener = %meters.name, error = %e, "accept failed; pausing briefly");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let admission = match connections.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                metrics::counter!(
                    "gatehouse_connections_refused_total",
                    "listener" => meters.name.to_string(),
                    "reason" => refusal.label(),
                )
                .increment(1);
                if connections.warn_now() {
                    tracing::warn!(
                        listener = %meters.name,
                        peer = %peer.ip(),
                        cap = refusal.label(),
                        open = connections.open(),
                        "refusing connections over the cap"
                    );
                }
                // Accepted and closed at once, so the backlog does not hold it either; the
                // answer is written only if the socket takes it without waiting.
                let _ = stream.try_write(REFUSED);
                continue;
            }
        };
        // Answers go out at once, not held back to be coalesced (Nagle).
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stream,
            peer,
            admission,
            builder: builder.clone(),
            app: app.clone(),
            limits: limits.clone(),
            meters: meters.clone(),
            stopping: stopping.clone(),
            watcher: graceful.watcher(),
            tls: tls.clone(),
        };
        tokio::spawn(connection.run());
    }
    drop(listener);
    let _ = stop.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// The layers every listener's router gets: a panic in a handler becomes a 500 problem body.
/// (HEAD is answered by axum's GET routes; nothing to add for it.)
fn edges(router: Router, meters: &Meters) -> Router {
    let panics = meters.panics.clone();
    let name = meters.name.clone();
    // The trace span outermost: a panic's log line names the request too.
    router
        .layer(CatchPanicLayer::custom(
            move |_panic: Box<dyn std::any::Any + Send + 'static>| {
                // The panic's message stays out of the answer and the log: it may hold request data.
                panics.increment(1);
                tracing::error!(listener = %name, "a request handler panicked");
                gatehouse_proto::web::problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server met an unexpected error",
                )
            },
        ))
        .layer(axum::middleware::from_fn(trace::trace_request))
}

/// One listener's metric handles, made once.
#[derive(Clone)]
struct Meters {
    name: Arc<str>,
    panics: metrics::Counter,
    body_timeouts: metrics::Counter,
    idle_closed: metrics::Counter,
    accept_errors: metrics::Counter,
    tls_failures: metrics::Counter,
    open: metrics::Gauge,
}

impl Meters {
    fn new(name: &str) -> Self {
        let label = || ("listener", name.to_owned());
        Self {
            name: name.into(),
            panics: metrics::counter!("gatehouse_panics_total", &[label()]),
            body_timeouts: metrics::counter!("gatehouse_request_body_timeouts_total", &[label()]),
            idle_closed: metrics::counter!("gatehouse_connections_idle_closed_total", &[label()]),
            accept_errors: metrics::counter!("gatehouse_accept_errors_total", &[label()]),
            tls_failures: metrics::counter!("gatehouse_tls_handshake_failures_total", &[label()]),
            open: metrics::gauge!("gatehouse_connections_open", &[label()]),
        }
    }
}

/// One accepted connection, until it closes.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// Its place in the budget, given back when this is dropped.
    admission: Admission,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    limits: ListenerLimits,
    meters: Meters,
    stopping: tokio::sync::watch::Receiver<bool>,
    watcher: Watcher,
    tls: Option<Tls>,
}

impl Connection {
    async fn run(self) {
        let Connection {
            stream,
            peer,
            admission,
            builder,
            app,
            limits,
            meters,
            mut stopping,
            watcher,
            tls,
        } = self;
        meters.open.increment(1);
        let open = meters.open.clone();
        let _open = OnDrop(move || open.decrement(1));
        // Until the first byte, the protocol is unknown and hyper's head timer has not
        // started; the head timeout covers that wait too.
        let mut first = [0u8; 1];
        tokio::select! {
            peeked = tokio::time::timeout(limits.header_read_timeout(), stream.peek(&mut first)) => {
                // Nothing in time, the peer gone, or an error: nothing to serve.
                if !matches!(peeked, Ok(Ok(1..))) {
                    return;
                }
            }
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let activity = Activity::new();
        let watched = Watched {
            stream,
            activity: activity.clone(),
            _admission: admission,
        };
        let session = Session {
            peer,
            builder,
            app,
            limits,
            meters,
            watcher,
            activity,
        };
        match tls {
            None => session.serve(watched, false).await,
            Some(tls) => {
                let handshake = tokio::time::timeout(
                    session.limits.header_read_timeout(),
                    tls.acceptor().accept(watched),
                );
                let secured = tokio::select! {
                    done = handshake => done,
                    _ = stopping.wait_for(|stop| *stop) => return,
                };
                match secured {
                    Ok(Ok(secured)) => session.serve(secured, true).await,
                    // A scanner, a plain-HTTP caller or a client that distrusts the
                    // certificate: counted, not logged one by one.
                    _ => session.meters.tls_failures.increment(1),
                }
            }
        }
    }
}

/// What serving one connection's requests needs, once the transport is settled.
struct Session {
    peer: SocketAddr,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    limits: ListenerLimits,
    meters: Meters,
    watcher: Watcher,
    activity: Activity,
}

impl Session {
    async fn serve<I>(self, io: I, over_tls: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Session {
            peer,
            builder,
            app,
            limits,
            meters,
            watcher,
            activity,
        } = self;
        let io = TokioIo::new(io);
        let service = {
            let activity = activity.clone();
            let body_timeout = limits.body_read_timeout();
            let body_timeouts = meters.body_timeouts.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                let activity = activity.clone();
                let body_timeouts = body_timeouts.clone();
                async move {
                    let expired = Arc::new(AtomicBool::new(false));
                    let (mut parts, body) = request.into_parts();
                    parts.extensions.insert(ConnectInfo(peer));
                    if over_tls {
                        parts.extensions.insert(ArrivedOverTls);
                    }
                    let body = Body::new(DeadlineBody::new(body, body_timeout, expired.clone()));
                    let response = app
                        .oneshot(Request::from_parts(parts, body))
                        .await
                        .unwrap_or_else(|never| match never {});
                    if expired.load(Ordering::Relaxed) {
                        body_timeouts.increment(1);
                        return Ok::<_, Infallible>(request_timeout());
                    }
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        activity.upgraded();
                    }
                    Ok(response)
                }
            })
        };
        let served = watcher.watch(builder.serve_connection_with_upgrades(io, service));
        tokio::select! {
            _ = served => {}
            () = activity.idle(limits.idle_timeout()) => meters.idle_closed.increment(1),
        }
    }
}

/// 408 for a body that did not arrive in time; the connection closes after it.
fn request_timeout() -> Response {
    let mut response = gatehouse_proto::web::problem(
        StatusCode::REQUEST_TIMEOUT,
        "the request body did not arrive in time",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Errors about one connection that never was (the peer gave up before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
