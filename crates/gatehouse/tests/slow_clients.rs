//! Slow clients against the real `gatehouse serve` under a 1,024 file-descriptor limit: a flood
//! of half-sent requests on every listener leaves every listener answering others; HEAD is
//! answered where GET is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 1_100;

/// Half-sent requests come from these addresses; the checks from 127.0.0.1.
const FLOOD_SOURCES: [&str; 2] = ["127.0.0.2", "127.0.0.3"];

async fn half_sent(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .ok()?;
    let mut stream = socket.connect(to).await.ok()?;
    // A refused connection may already be closed; the flood goes on regardless.
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: flood\r\nx-slow: ")
        .await;
    Some(stream)
}

#[tokio::test]
async fn half_sent_requests_leave_every_listener_answering() {
    // This process holds the whole flood open.
    rlimit::increase_nofile_limit(4_096).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The node runs with 1,024 file descriptors, soft and hard.
    let mut shell = std::process::Command::new("sh");
    shell
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--auth-listen", "127.0.0.1:0"])
        .args(["--gateway-listen", "127.0.0.1:0", "--apps-ports-from", "0"])
        .env_remove("GATEHOUSE_KEK")
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env("GATEHOUSE_LOG", "warn")
        .env("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0")
        // The flood is held open for the whole test, not timed out under it.
        .env("GATEHOUSE_LISTENERS__HEADER_READ_TIMEOUT_MS", "120000");
    let node = common::spawn_ready(shell);

    let address = |url: &str| -> SocketAddr { url.trim_start_matches("http://").parse().unwrap() };
    let gateway = node.gateway.clone().unwrap();
    let mut checks: Vec<(String, String)> = vec![
        ("auth".into(), format!("{}/healthz", node.base)),
        ("gateway".into(), format!("{gateway}/_gatehouse/healthz")),
    ];
    let mut targets = vec![address(&node.base), address(&gateway)];
    for (name, url) in &node.apps {
        checks.push((format!("app {name}"), format!("{url}/openapi.json")));
        targets.push(address(url));
    }

    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let from = FLOOD_SOURCES[i % FLOOD_SOURCES.len()];
        let to = targets[i % targets.len()];
        if let Some(stream) = half_sent(from, to).await {
            flood.push(stream);
        }
    }
    assert!(
        flood.len() > 1_024,
        "only {} connections opened",
        flood.len()
    );

    // Fresh connections from elsewhere are still served, on every listener.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (name, url) in &checks {
        let response = http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} did not answer: {e}"));
        assert!(
            response.status().as_u16() < 500,
            "{name}: {}",
            response.status()
        );
        if name == "auth" || name == "gateway" {
            assert_eq!(response.status(), 200, "{name}");
        }
    }
    // HEAD goes wherever GET does, through the gateway too (as HEAD: no body comes back).
    for url in [
        format!("{}/healthz", node.base),
        format!("{gateway}/api/posts/openapi.json"),
    ] {
        let response = http.head(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "HEAD {url}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // The process did not fall over, and stops cleanly once the flood is gone.
    drop(flood);
    assert_eq!(common::terminate(node).code(), Some(0));
}
