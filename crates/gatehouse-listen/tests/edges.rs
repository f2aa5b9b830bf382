//! Real connections on loopback against `gatehouse_listen::serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use gatehouse_listen::{Connections, ListenerLimits};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, oneshot};

/// Long enough that a test which is not about a timeout never meets one.
const LONG_MS: u64 = 60_000;
/// How long a test waits at most for something that should happen much sooner.
const PATIENCE: Duration = Duration::from_secs(20);

fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

fn limits() -> ListenerLimits {
    ListenerLimits {
        header_read_timeout_ms: LONG_MS,
        idle_timeout_ms: LONG_MS,
        body_read_timeout_ms: LONG_MS,
        ..ListenerLimits::default()
    }
}

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

async fn start(name: &str, limits: ListenerLimits, router: Router) -> Server {
    metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let connections = Connections::new(limits);
    let name = name.to_owned();
    let task = tokio::spawn(async move {
        gatehouse_listen::serve(listener, &name, router, connections, async move {
            let _ = stopped.await;
        })
        .await
    });
    Server {
        address,
        stop: Some(stop),
        task,
    }
}

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret detail in the panic");
                }
                "unreachable"
            }),
        )
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
}

/// A connection from `from` (a loopback address) to `to`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the peer closes (EOF or reset); what it sent before.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection was not closed"),
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// One response on a kept-alive connection: status and body (by `content-length`).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("a response")
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed mid-response: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

async fn get_on(stream: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

#[tokio::test]
async fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let server = start(
        "test-head",
        ListenerLimits {
            header_read_timeout_ms: 200,
            ..limits()
        },
        app(),
    )
    .await;
    let mut half = TcpStream::connect(server.address).await.unwrap();
    half.write_all(b"GET /hello HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    assert!(read_until_closed(&mut half).await.is_empty());
    // A client that connects and says nothing is closed too.
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    // Others are served meanwhile and after.
    let mut fine = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(get_on(&mut fine, "/hello").await, (200, "hello".into()));
    server.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = start(
        "test-idle",
        ListenerLimits {
            header_read_timeout_ms: 300,
            ..limits()
        },
        app(),
    )
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(get_on(&mut stream, "/hello").await.0, 200);
    assert_eq!(get_on(&mut stream, "/hello").await.0, 200);
    // Kept alive, then idle: hyper's head timer runs while it waits for the next request.
    assert!(read_until_closed(&mut stream).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_connection_where_nothing_moves_is_closed_after_the_idle_timeout() {
    let server = start(
        "test-stalled",
        ListenerLimits {
            idle_timeout_ms: 300,
            ..limits()
        },
        app(),
    )
    .await;
    // An HTTP/2 preface, then silence: no request head for hyper's HTTP/1 timer to wait on.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    read_until_closed(&mut stream).await;
    let text = metrics().render();
    assert!(
        text.contains("gatehouse_connections_idle_closed_total{listener=\"test-stalled\"} 1"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let server = start(
        "test-body",
        ListenerLimits {
            body_read_timeout_ms: 200,
            ..limits()
        },
        app(),
    )
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nab")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // A body that arrives in time is read whole.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\n\r\nabc")
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await, (200, "3".into()));
    server.stop().await;
}

/// True when the server refused the connection: a 503, or closed without a word.
async fn refused(stream: &mut TcpStream) -> bool {
    let answer = read_until_closed(stream).await;
    answer.is_empty() || answer.starts_with(b"HTTP/1.1 503")
}

/// A new connection from `from` served `/hello`, retried while earlier ones are still being
/// closed by the server.
async fn eventually_served(from: &str, to: SocketAddr) -> TcpStream {
    for _ in 0..500 {
        let mut stream = connect_from(from, to).await;
        let request = b"GET /hello HTTP/1.1\r\nhost: test\r\n\r\n";
        if stream.write_all(request).await.is_ok() {
            let mut first = [0u8; 12];
            if let Ok(Ok(_)) = tokio::time::timeout(PATIENCE, stream.read_exact(&mut first)).await
                && first.starts_with(b"HTTP/1.1 200")
            {
                return stream;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never admitted again");
}

#[tokio::test]
async fn the_caps_refuse_extra_connections_and_admit_again_when_others_close() {
    let server = start(
        "test-caps",
        ListenerLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..limits()
        },
        app(),
    )
    .await;
    let to = server.address;
    // Two from one address, each answered (so surely counted), then held open.
    let mut a1 = connect_from("127.0.0.2", to).await;
    assert_eq!(get_on(&mut a1, "/hello").await.0, 200);
    let mut a2 = connect_from("127.0.0.2", to).await;
    assert_eq!(get_on(&mut a2, "/hello").await.0, 200);
    // A third from the same address is over its share.
    assert!(refused(&mut connect_from("127.0.0.2", to).await).await);
    // Another address still gets in, and fills the process's budget.
    let mut b1 = connect_from("127.0.0.3", to).await;
    assert_eq!(get_on(&mut b1, "/peer").await, (200, "127.0.0.3".into()));
    assert!(refused(&mut connect_from("127.0.0.4", to).await).await);
    let text = metrics().render();
    assert!(text.contains("reason=\"per_ip\""), "{text}");
    assert!(text.contains("reason=\"total\""), "{text}");
    // When connections close, their places are given back.
    drop(a1);
    let _c = eventually_served("127.0.0.4", to).await;
    drop(a2);
    let _a3 = eventually_served("127.0.0.2", to).await;
    drop(b1);
    server.stop().await;
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let server = start("test-head-method", limits(), app()).await;
    let response = reqwest::Client::new()
        .head(format!("http://{}/hello", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_gives_a_500_problem_and_is_counted() {
    let server = start("test-panic", limits(), app()).await;
    let response = reqwest::get(format!("http://{}/panic", server.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 500);
    assert!(!body.contains("secret"), "{body}");
    let text = metrics().render();
    assert!(
        text.contains("gatehouse_panics_total{listener=\"test-panic\"} 1"),
        "{text}"
    );
    // The server goes on.
    let response = reqwest::get(format!("http://{}/hello", server.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let router = {
        let (entered, release) = (entered.clone(), release.clone());
        Router::new().route(
            "/slow",
            get(move || async move {
                entered.notify_one();
                release.notified().await;
                "done"
            }),
        )
    };
    let server = start("test-graceful", limits(), router).await;
    let url = format!("http://{}/slow", server.address);
    let request = tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await });
    entered.notified().await;
    let Server {
        address,
        stop,
        task,
    } = server;
    let _ = stop.unwrap().send(());
    // No new connections once stopping...
    let mut refused_after = false;
    for _ in 0..500 {
        if TcpStream::connect(address).await.is_err() {
            refused_after = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused_after);
    // ...but the request in flight is answered, and then the server ends.
    release.notify_one();
    assert_eq!(request.await.unwrap().unwrap(), "done");
    tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn h2c_is_served_too() {
    let server = start("test-h2c", limits(), app()).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}/hello", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello");
    server.stop().await;
}
