//! The real `gatehouse serve` process: first start, restart on the same data, admin bootstrap,
//! and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Running, terminate};
use serde_json::Value;

fn start(data_dir: &Path, env: &[(&str, &str)]) -> Running {
    let dir = data_dir.to_str().unwrap();
    common::start(&["serve", "--data-dir", dir], env)
}

#[tokio::test]
async fn serve_bootstraps_persists_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let admin = [
        ("GATEHOUSE_ADMIN_USERNAME", "root"),
        ("GATEHOUSE_ADMIN_PASSWORD", "root-password-1"),
    ];
    let http = reqwest::Client::new();

    let first = start(dir.path(), &admin);
    assert_eq!(
        http.get(format!("{}/readyz", first.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let kid = common::published_kids(&http, &first.base).await[0].clone();
    let login: Value = http
        .post(format!("{}/oauth2/token", first.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "root"),
            ("password", "root-password-1"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me: Value = http
        .get(format!("{}/users/me", first.base))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["admin", "user"]));
    let status = terminate(first);
    assert!(
        status.success(),
        "SIGTERM should end the process cleanly, got {status}"
    );

    // The data directory: SQLite in WAL mode and a private key-encryption key file.
    assert!(dir.path().join("gatehouse.db").exists());
    let kek = dir.path().join("kek.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let journal: String = {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(journal, "wal");

    // A restart reuses the stored key and does not create the admin twice.
    let second = start(dir.path(), &admin);
    assert_eq!(common::published_kids(&http, &second.base).await[0], kid);
    let again = http
        .post(format!("{}/oauth2/token", second.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "gatehouse-web"),
            ("username", "root"),
            ("password", "root-password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert!(terminate(second).success());
}

#[tokio::test]
async fn a_wrong_key_encryption_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]);
    assert!(terminate(first).success());
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--auth-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GATEHOUSE_KEK", "00".repeat(32))
        .env("GATEHOUSE_LOG", "error")
        .env("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("signing key"), "{stderr}");
    assert!(
        !stderr.contains(&"00".repeat(32)),
        "the key must not be echoed"
    );
}

#[test]
fn half_an_admin_bootstrap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--auth-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GATEHOUSE_ADMIN_USERNAME", "root")
        .env_remove("GATEHOUSE_ADMIN_PASSWORD")
        .env("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("GATEHOUSE_ADMIN_PASSWORD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_revocation_feed_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let created = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args([
            "client",
            "create",
            "--name",
            "gateway",
            "--scope",
            "revocations:read",
        ])
        .env_remove("GATEHOUSE_KEK")
        .output()
        .unwrap();
    assert!(created.status.success());
    let client: Value = serde_json::from_slice(&created.stdout).unwrap();
    let server = start(dir.path(), &[]);
    let mut feed = reqwest::Client::new()
        .get(format!("{}/oauth2/revocations", server.base))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            Some(client["client_secret"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let first = feed.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("subscribed"));

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The stream ends, and the process exits cleanly, without waiting for the reader to leave.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(_)) = feed.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the feed did not end on shutdown");
    let mut server = server;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
