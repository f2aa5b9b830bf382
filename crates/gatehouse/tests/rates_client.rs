//! `gatehouse rates-client`, the reference machine client, against a real `gatehouse serve`:
//! it registers itself, reads the rates through the gateway, and rides out the server being
//! down (before it ever started, and across a restart) without exiting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gatehouse ARGS` and waits until it is ready.
fn spawn(args: &[&str]) -> common::Running {
    let mut command = common::gatehouse(
        args,
        &[
            ("GATEHOUSE_ADMIN_USERNAME", "root"),
            ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
        ],
    );
    command.env("GATEHOUSE_LOG", "error");
    common::spawn_ready(command)
}

fn serve(data: &str, auth: u16, gateway: u16) -> common::Running {
    let auth_listen = format!("127.0.0.1:{auth}");
    let gateway_listen = format!("127.0.0.1:{gateway}");
    spawn(&[
        "serve",
        "--data-dir",
        data,
        "--auth-listen",
        &auth_listen,
        "--gateway-listen",
        &gateway_listen,
        "--apps-ports-from",
        "0",
    ])
}

async fn status(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `/status` until `check` holds, for at most `limit`.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let now = status(http, url).await;
        if check(&now) {
            return now;
        }
        assert!(started.elapsed() < limit, "{what}: still {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_machine_client_registers_reads_rates_and_survives_the_server_going_away() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let credentials = dir.path().join("client/credentials.json");
    let (auth, gateway) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{auth}");
    let gateway_url = format!("http://127.0.0.1:{gateway}");

    // The client starts first, while nothing is listening: it waits and says why.
    let mut client = spawn(&[
        "rates-client",
        "--issuer",
        &issuer,
        "--gateway",
        &gateway_url,
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        credentials.to_str().unwrap(),
        "--poll-secs",
        "1",
    ]);
    let status_url = client.base.clone();
    let http = reqwest::Client::new();
    let early = wait_for(
        &http,
        &status_url,
        Duration::from_secs(10),
        "reporting the failed registration",
        |s| {
            s["registered"] == false
                && s["last_poll_outcome"]
                    .as_str()
                    .is_some_and(|o| o.contains("cannot register"))
        },
    )
    .await;
    assert!(early["client_id"].is_null());
    let currencies = http
        .get(status_url.replace("/status", "/currencies"))
        .send()
        .await
        .unwrap();
    assert_eq!(currencies.status(), 503);

    let server = serve(data, auth, gateway);
    let ready = wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "registering and reading",
        |s| s["last_poll_outcome"] == "ok",
    )
    .await;
    let client_id = ready["client_id"].as_str().unwrap().to_owned();
    assert!(ready["token_expires_in_secs"].as_u64().unwrap() > 0);
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["client_id"], client_id.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let snapshot: Value = http
        .get(status_url.replace("/status", "/currencies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let symbols: Vec<&str> = snapshot
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["BTC", "ETH", "SOL"]);

    // The server goes away: the client reports it and keeps running.
    assert!(common::terminate(server).success());
    wait_for(
        &http,
        &status_url,
        Duration::from_secs(10),
        "reporting the outage",
        |s| s["consecutive_failures"].as_u64().unwrap_or(0) > 0,
    )
    .await;
    assert!(
        client.child.try_wait().unwrap().is_none(),
        "the client exited"
    );

    // Back on the same data: the same registration works again.
    let _server = serve(data, auth, gateway);
    let recovered = wait_for(
        &http,
        &status_url,
        Duration::from_secs(20),
        "recovering",
        |s| s["last_poll_outcome"] == "ok" && s["consecutive_failures"] == 0,
    )
    .await;
    assert_eq!(recovered["client_id"], client_id.as_str());
    assert!(client.child.try_wait().unwrap().is_none());

    // The server forgets the client (deleted by an administrator): it registers again. Its
    // cached token is revoked too, so the next poll meets the unknown client.
    let admin = common::login(&http, &issuer, "root", "root-password-1").await;
    let deleted = http
        .delete(format!("{issuer}/admin/clients/{client_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = wait_for(
        &http,
        &status_url,
        Duration::from_secs(30),
        "registering again",
        |s| {
            s["registered"] == true
                && s["client_id"].as_str().is_some_and(|id| id != client_id)
                && s["last_poll_outcome"] == "ok"
        },
    )
    .await;
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(stored["client_id"], again["client_id"]);
    assert!(client.child.try_wait().unwrap().is_none());
}
