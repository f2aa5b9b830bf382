//! The examples for services not written in Rust (`examples/python-fastapi` with PyJWT,
//! `examples/node` with jose), each started as its README says in front of a real
//! `gatehouse auth` signing with EdDSA, ES256 and RS256 in turn: RFC 6750 refusals, scopes, and
//! revocations learned from the feed (a token, a sign-in session, a blocked client) enforced
//! within a second.
//! Skipped with a note when Python's venv or Node's packages are not installed, unless
//! GATEHOUSE_REQUIRE_EXAMPLES is set (the test script installs both and sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Program as Example, free_port};

const ADMIN: (&str, &str) = ("root", "root-password-1");
const ALGORITHMS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

/// The workspace's root, where `examples/` and `target/` are.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `command` if it can run, or `None` (and a note) when it cannot and is not required.
fn usable(mut command: Command, what: &str) -> Option<()> {
    let works = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return Some(());
    }
    assert!(
        std::env::var_os("GATEHOUSE_REQUIRE_EXAMPLES").is_none(),
        "{what} is missing (scripts/test installs it)"
    );
    eprintln!("skipped: {what} is not installed (scripts/test installs it)");
    None
}

/// Starts `command` (an example, told the issuer and its feed client) and waits until its
/// `/readyz` says the feed has caught up.
async fn start_example(
    mut command: Command,
    port: u16,
    issuer: &str,
    feed: &(String, String),
) -> Example {
    let mut child = command
        .env("GATEHOUSE_ISSUER", issuer)
        .env("GATEHOUSE_FEED_CLIENT_ID", &feed.0)
        .env("GATEHOUSE_FEED_CLIENT_SECRET", &feed.1)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the example exited ({status}) before it was ready");
        }
        if let Ok(ready) = http.get(format!("{base}/readyz")).send().await
            && ready.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the example was not ready after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Example { child, base }
}

/// A real authorization server signing with `alg`, with the clients the examples need.
struct Issuer {
    alg: &'static str,
    server: common::Running,
    admin: String,
    /// A confidential client with revocations:read, the examples' feed client.
    feed: (String, String),
    _dir: tempfile::TempDir,
}

async fn issuer(http: &reqwest::Client, alg: &'static str) -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(
        &["auth", "--data-dir", data.to_str().unwrap()],
        &[
            ("GATEHOUSE_ADMIN_USERNAME", ADMIN.0),
            ("GATEHOUSE_ADMIN_PASSWORD", ADMIN.1),
            ("GATEHOUSE_AUTH__SIGNING_ALGORITHM", alg),
        ],
    );
    let admin = common::login(http, &server.base, ADMIN.0, ADMIN.1).await;
    let feed = common::admin_client(http, &server.base, &admin, "revocations:read").await;
    Issuer {
        alg,
        server,
        admin,
        feed,
        _dir: dir,
    }
}

/// A GET of `url` with `token` (none when `None`): its status and challenge.
async fn answer(http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

/// The `alg` in a token's header.
fn alg_of(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["alg"].as_str().unwrap().to_owned()
}

async fn refused_within_a_second(http: &reqwest::Client, url: &str, token: &str, what: &str) {
    common::within_a_second(what, || async {
        let (status, challenge) = answer(http, url, Some(token)).await;
        status == 401 && challenge.contains(r#"error="invalid_token""#)
    })
    .await;
}

/// What every example must do.
async fn protects(example: &Example, issuer: &Issuer, http: &reqwest::Client) {
    let base = &issuer.server.base;
    let rates = format!("{}/rates", example.base);
    let me = format!("{}/me", example.base);

    // RFC 6750 §3.1: no token, no error code.
    assert_eq!(
        answer(http, &rates, None).await,
        (401, r#"Bearer realm="gatehouse""#.to_owned())
    );
    let (status, challenge) = answer(http, &rates, Some("not.a.token")).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    // A machine with the scope: allowed, and the example says whose token it was.
    let (reader, reader_secret) =
        common::admin_client(http, base, &issuer.admin, "rates:read").await;
    let token = common::client_token(http, base, &reader, &reader_secret).await;
    assert_eq!(alg_of(&token), issuer.alg);
    let allowed = http.get(&rates).bearer_auth(&token).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    let body: serde_json::Value = allowed.json().await.unwrap();
    assert_eq!(body["subject"], reader.as_str(), "{body}");

    // A machine without it: 403 naming the scope, though the token is valid.
    let (other, other_secret) = common::admin_client(http, base, &issuer.admin, "fx:read").await;
    let other_token = common::client_token(http, base, &other, &other_secret).await;
    let (status, challenge) = answer(http, &rates, Some(&other_token)).await;
    assert_eq!(status, 403, "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="rates:read""#),
        "{challenge}"
    );
    assert_eq!(answer(http, &me, Some(&other_token)).await.0, 200);

    // RFC 7009: the token revoked by its client; the feed says token_revoked.
    let revoked = http
        .post(format!("{base}/oauth2/revoke"))
        .basic_auth(&reader, Some(&reader_secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    refused_within_a_second(http, &rates, &token, "a revoked token's refusal").await;
    // Another token of the same client is still good.
    let fresh = common::client_token(http, base, &reader, &reader_secret).await;
    assert_eq!(answer(http, &rates, Some(&fresh)).await.0, 200);

    // A person's sign-in ended by logging out (the refresh token revoked): session_revoked.
    let signed_in = common::sign_in(http, base, ADMIN.0, ADMIN.1).await;
    let person = signed_in["access_token"].as_str().unwrap();
    assert_eq!(answer(http, &rates, Some(person)).await.0, 200);
    let logged_out = http
        .post(format!("{base}/oauth2/revoke"))
        .form(&[
            ("token", signed_in["refresh_token"].as_str().unwrap()),
            ("client_id", "gatehouse-web"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_out.status(), 200);
    refused_within_a_second(http, &me, person, "an ended session's refusal").await;

    // A blocked client: subject_cutoff, every token it was issued before is dead.
    let blocked = http
        .patch(format!("{base}/admin/clients/{other}"))
        .bearer_auth(&issuer.admin)
        .json(&serde_json::json!({"blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    refused_within_a_second(http, &me, &other_token, "a blocked client's refusal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_fastapi_example_protects_its_routes() {
    let python = std::env::var_os("GATEHOUSE_TEST_EXAMPLES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/py-examples/bin/python"));
    let mut probe = Command::new(&python);
    probe.args(["-c", "import fastapi, uvicorn, jwt, httpx, cryptography"]);
    if usable(probe, "the Python example's virtual environment").is_none() {
        return;
    }
    let http = reqwest::Client::new();
    for alg in ALGORITHMS {
        let issuer = issuer(&http, alg).await;
        let port = free_port();
        let mut command = Command::new(&python);
        command
            .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--log-level", "warning"])
            .current_dir(workspace().join("examples/python-fastapi"));
        let example = start_example(command, port, &issuer.server.base, &issuer.feed).await;
        protects(&example, &issuer, &http).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_example_protects_its_routes() {
    let dir = std::env::var_os("GATEHOUSE_TEST_EXAMPLES_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("examples/node"));
    let mut probe = Command::new("node");
    probe.args(["-e", "import('jose')"]).current_dir(&dir);
    if usable(probe, "Node with the example's packages (npm ci)").is_none() {
        return;
    }
    let http = reqwest::Client::new();
    for alg in ALGORITHMS {
        let issuer = issuer(&http, alg).await;
        let port = free_port();
        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .env("PORT", port.to_string())
            .current_dir(&dir);
        let example = start_example(command, port, &issuer.server.base, &issuer.feed).await;
        protects(&example, &issuer, &http).await;
    }
}
