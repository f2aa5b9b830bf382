//! `gatehouse admin …` against the store of a running server: changes apply to it within a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs `gatehouse admin --data-dir DIR ARGS`, feeding `stdin`; returns (success, stdout, stderr).
fn admin(dir: &Path, args: &[&str], stdin: &str) -> (bool, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_KEK")
        .env_remove("GATEHOUSE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_administer_a_running_server_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, client, _) = admin(
        dir.path(),
        &["client", "create", "--name", "ops", "--scope", "rates:read"],
        "",
    );
    assert!(ok);
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();

    let server = common::start(&["serve", "--data-dir", dir.path().to_str().unwrap()], &[]);
    let http = reqwest::Client::new();
    let token_status = || async {
        http.post(format!("{}/oauth2/token", server.base))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(token_status().await, 200);

    let (ok, listed, _) = admin(dir.path(), &["client", "list"], "");
    assert!(ok);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id.as_str())
    );
    let (ok, blocked, _) = admin(dir.path(), &["client", "block", &id], "");
    assert!(ok);
    assert_eq!(blocked["blocked"], true);
    common::within_a_second("a CLI block reaching the server", || async {
        token_status().await == 401
    })
    .await;

    let (ok, user, _) = admin(
        dir.path(),
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--email",
            "bob@example.com",
            "--role",
            "admin",
            "--role",
            "user",
        ],
        "bob-password-1\n",
    );
    assert!(ok);
    assert_eq!(user["roles"], serde_json::json!(["admin", "user"]));
    let login = || async {
        http.post(format!("{}/oauth2/token", server.base))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "gatehouse-web"),
                ("username", "bob"),
                ("password", "bob-password-1"),
            ])
            .send()
            .await
            .unwrap()
    };
    let tokens: Value = login().await.json().await.unwrap();
    let (ok, revoked, _) = admin(dir.path(), &["revoke-all", "--subject", "bob"], "");
    assert!(ok);
    assert_eq!(revoked["sessions_revoked"], 1);
    let me = http
        .get(format!("{}/users/me", server.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let (ok, _, _) = admin(dir.path(), &["user", "block", "bob"], "");
    assert!(ok);
    assert_eq!(login().await.status(), 400);

    let (ok, key, _) = admin(dir.path(), &["keys", "rotate"], "");
    assert!(ok);
    let kid = key["kid"].as_str().unwrap().to_owned();
    common::within_a_second("a CLI key rotation reaching the server", || async {
        common::published_kids(&http, &server.base)
            .await
            .contains(&kid)
    })
    .await;
    let (ok, keys, _) = admin(dir.path(), &["keys", "list"], "");
    assert!(ok);
    assert_eq!(keys.as_array().unwrap().len(), 2);

    let (ok, _, stderr) = admin(
        dir.path(),
        &["user", "create", "--username", "x y", "--email", "nope"],
        "short\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains("username") && stderr.contains("email") && stderr.contains("password"),
        "{stderr}"
    );
    let (ok, _, stderr) = admin(dir.path(), &["client", "block", "cl_nobody"], "");
    assert!(!ok);
    assert!(stderr.contains("no such client"), "{stderr}");
    assert!(common::terminate(server).success());
}
