//! `gatehouse admin client create/update` for clients of the authorization code flow: redirect
//! URIs, public clients, consent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Runs `gatehouse admin --data-dir DIR ARGS`; returns (success, stdout as JSON, stderr).
fn admin(dir: &Path, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_KEK")
        .env_remove("GATEHOUSE_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn operators_make_and_change_code_flow_clients_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, created, stderr) = admin(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "dashboard",
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            "https://app.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--post-logout-redirect-uri",
            "https://app.example/bye",
            "--skip-consent",
        ],
    );
    assert!(ok, "{stderr}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert_eq!(created["client_secret"], Value::Null);
    assert_eq!(created["token_endpoint_auth_method"], "none");
    assert_eq!(
        created["redirect_uris"],
        json!(["https://app.example/cb", "http://127.0.0.1/cb"])
    );
    assert_eq!(
        created["post_logout_redirect_uris"],
        json!(["https://app.example/bye"])
    );
    assert_eq!(created["skip_consent"], true);

    let (ok, updated, stderr) = admin(
        dir.path(),
        &[
            "client",
            "update",
            &id,
            "--redirect-uri",
            "https://app.example/new",
            "--clear-post-logout-redirect-uris",
            "--ask-consent",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(updated["redirect_uris"], json!(["https://app.example/new"]));
    assert_eq!(updated["post_logout_redirect_uris"], json!([]));
    assert_eq!(updated["skip_consent"], false);
    assert_eq!(updated["name"], "dashboard", "only what was given changes");

    // A bad URI is refused, naming the option's field and the URI, and nothing changes.
    let (ok, _, stderr) = admin(
        dir.path(),
        &[
            "client",
            "update",
            &id,
            "--redirect-uri",
            "http://app.example/cb",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("redirect_uris") && stderr.contains("http://app.example/cb"),
        "{stderr}"
    );
    let (ok, _, stderr) = admin(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "nowhere",
            "--grant",
            "authorization_code",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("redirect_uris"), "{stderr}");
    let (ok, listed, _) = admin(dir.path(), &["client", "list"]);
    assert!(ok);
    let items = listed["items"].as_array().unwrap();
    assert!(!items.iter().any(|c| c["name"] == "nowhere"));
    let ours = items
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .unwrap();
    assert_eq!(ours["redirect_uris"], json!(["https://app.example/new"]));

    // Nothing to change is an error, not a silent success.
    let (ok, _, stderr) = admin(dir.path(), &["client", "update", &id]);
    assert!(!ok);
    assert!(stderr.contains("body"), "{stderr}");
}
