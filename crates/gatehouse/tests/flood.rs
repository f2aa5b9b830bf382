//! Revocation under a flood, with real processes on one PostgreSQL: two authorization nodes, a
//! gateway following node B's feed, and clients revoking their own tokens as fast as they can
//! through both nodes. A revocation made on node A is enforced by that gateway within a second,
//! a gateway started mid-flood becomes ready with every earlier revocation known and enforces new
//! ones within a second, and valid tokens are never answered 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flooding clients; each loops token → revoke, alternating between the nodes.
const FLOODERS: usize = 3;
/// The flood never runs longer than this, whatever happens to the test.
const FLOOD_LIMIT: Duration = Duration::from_secs(60);

async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Revokes at `node` a fresh token that `gateway` accepts, and waits for the gateway to refuse it.
async fn probe(http: &reqwest::Client, node: &str, gateway: &str, id: &str, secret: &str) {
    let token = common::client_token(http, node, id, secret).await;
    let url = format!("{gateway}/bench/probe");
    assert_eq!(common::status_of(http, &url, &token).await, 200);
    common::revoke(http, node, id, secret, &token).await;
    common::within_a_second(
        "a revocation reaching the gateway during the flood",
        || async { common::status_of(http, &url, &token).await == 401 },
    )
    .await;
}

/// Until `stop`, asks `gateway` with a valid token every 20 ms; returns the 503s seen.
fn watch(
    http: reqwest::Client,
    gateway: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut unavailable = 0;
        let url = format!("{gateway}/bench/watch");
        while !stop.load(Ordering::Relaxed) {
            if common::status_of(&http, &url, &token).await == 503 {
                unavailable += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unavailable
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_reach_gateways_within_a_second_during_a_flood() {
    let Some(server) = gatehouse_testkit::postgres_url() else {
        return;
    };
    let url = common::fresh_database(&server, "gh_flood").await;
    let kek = "22".repeat(32);
    let env = [
        ("GATEHOUSE_KEK", kek.as_str()),
        ("GATEHOUSE_ADMIN_USERNAME", "root"),
        ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ("GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND", "0"),
        ("GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND", "0"),
        ("GATEHOUSE_RATE_LIMITS__REVOKE_PER_IP_PER_SECOND", "0"),
        ("GATEHOUSE_RATE_LIMITS__REVOKE_PER_CLIENT_PER_SECOND", "0"),
    ];
    let b = common::start(&["auth", "--database-url", &url], &env);
    // One issuer for both nodes, as behind a load balancer: node B's address, so gateways
    // discover B's keys and follow B's feed.
    let mut a_env = env.to_vec();
    a_env.push(("GATEHOUSE_ISSUER", b.base.as_str()));
    let a = common::start(&["auth", "--database-url", &url], &a_env);
    let http = reqwest::Client::new();
    let admin = common::login(&http, &a.base, "root", "root-password-1").await;
    let (feed_id, feed_secret) =
        common::admin_client(&http, &a.base, &admin, "revocations:read").await;
    let (probe_id, probe_secret) = common::admin_client(&http, &a.base, &admin, "rates:read").await;

    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nissuer = \"{}\"\nfeed_client_id = \"{feed_id}\"\n\n\
             [[route]]\nname = \"bench\"\nprefix = \"/bench\"\nupstream = \"{upstream}\"\n\
             methods = [\"GET\"]\nscopes = {{ GET = [\"rates:read\"] }}\n",
            b.base
        ),
    )
    .unwrap();
    let gateway_env = [("GATEHOUSE_GATEWAY_CLIENT_SECRET", feed_secret.as_str())];
    let first = common::start_gateway(&config, &gateway_env);
    let first_url = first.base.clone();
    common::within_a_second("the first gateway's feed catching up", || async {
        http.get(format!("{first_url}/_gatehouse/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // The flood: each client takes a token from one node and revokes it at the other.
    let stop = Arc::new(AtomicBool::new(false));
    let revoked = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for n in 0..FLOODERS {
        let (id, secret) = common::admin_client(&http, &a.base, &admin, "rates:read").await;
        let nodes = [a.base.clone(), b.base.clone()];
        let (http, stop, revoked) = (http.clone(), stop.clone(), revoked.clone());
        flooders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut i = n;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < FLOOD_LIMIT {
                let token = common::client_token(&http, &nodes[i % 2], &id, &secret).await;
                common::revoke(&http, &nodes[(i + 1) % 2], &id, &secret, &token).await;
                revoked.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let watcher_token = common::client_token(&http, &a.base, &probe_id, &probe_secret).await;
    let first_watch = watch(
        http.clone(),
        first_url.clone(),
        watcher_token.clone(),
        stop.clone(),
    );
    // Let the flood build up before measuring.
    while revoked.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for _ in 0..5 {
        probe(&http, &a.base, &first_url, &probe_id, &probe_secret).await;
    }

    // A gateway started mid-flood: ready only once it knows every earlier revocation.
    let revoked_before_start = common::client_token(&http, &a.base, &probe_id, &probe_secret).await;
    common::revoke(
        &http,
        &a.base,
        &probe_id,
        &probe_secret,
        &revoked_before_start,
    )
    .await;
    let second = common::start_gateway(&config, &gateway_env);
    let second_url = second.base.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{second_url}/_gatehouse/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway started mid-flood never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        common::status_of(
            &http,
            format!("{second_url}/bench/x"),
            &revoked_before_start
        )
        .await,
        401,
        "a ready gateway knows the revocations made before it started"
    );
    let second_watch = watch(
        http.clone(),
        second_url.clone(),
        watcher_token,
        stop.clone(),
    );
    for _ in 0..5 {
        probe(&http, &a.base, &second_url, &probe_id, &probe_secret).await;
    }

    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    assert!(revoked.load(Ordering::Relaxed) > 500, "the flood ran");
    assert_eq!(
        first_watch.await.unwrap(),
        0,
        "no 503 for a valid token at the first gateway"
    );
    assert_eq!(
        second_watch.await.unwrap(),
        0,
        "no 503 for a valid token at the second gateway"
    );
    drop((first, second, a, b));
}
