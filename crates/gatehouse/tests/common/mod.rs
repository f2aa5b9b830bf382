//! Runs the real `gatehouse` binary for tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fakes;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Running {
    pub child: Child,
    pub base: String,
    /// The gateway `serve` runs beside the authorization server.
    pub gateway: Option<String>,
    /// The reference apps `serve` runs, by name, with their direct addresses.
    pub apps: std::collections::HashMap<String, String>,
}

/// Spawns `command` with its stdout piped; returns it with the lines it printed up to and
/// including the first that starts with `last` (trimmed). Later lines are drained, so the child
/// never blocks on a full pipe.
pub fn spawn_until(mut command: Command, last: &str) -> (Child, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("exited before printing {last:?}; printed {seen:?}"))
            .unwrap();
        let line = line.trim().to_owned();
        let done = line.starts_with(last);
        seen.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, seen)
}

/// The URL a printed line gives after `label`, if the line is that label's.
fn printed_url(line: &str, label: &str) -> Option<String> {
    line.strip_prefix(label).map(|rest| rest.trim().to_owned())
}

/// A `gatehouse` command with the test environment: quiet, and no key or database inherited.
pub fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .env_remove("GATEHOUSE_KEK")
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env("GATEHOUSE_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// Starts `gatehouse ARGS` on free ports and waits until it says it is listening.
pub fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut command = gatehouse(args, env);
    command.args(["--auth-listen", "127.0.0.1:0"]);
    if args.first() == Some(&"serve") {
        command.args(["--gateway-listen", "127.0.0.1:0", "--apps-ports-from", "0"]);
    }
    let (child, lines) = spawn_until(command, "authorization server");
    let find = |label: &str| lines.iter().find_map(|l| printed_url(l, label));
    let apps = lines
        .iter()
        .filter_map(|l| l.strip_prefix("app "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, url)| (name.to_owned(), url.trim().to_owned()))
        .collect();
    Running {
        child,
        base: find("authorization server").unwrap(),
        gateway: find("gateway "),
        apps,
    }
}

/// Starts `gatehouse gateway --config FILE` on a free port; `base` is the gateway's URL.
pub fn start_gateway(config: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut command = gatehouse(&["gateway", "--listen", "127.0.0.1:0", "--config"], env);
    command.arg(config);
    let (child, lines) = spawn_until(command, "gateway ");
    let base = lines
        .iter()
        .find_map(|l| printed_url(l, "gateway "))
        .unwrap();
    Running {
        child,
        base: base.clone(),
        gateway: Some(base),
        apps: Default::default(),
    }
}

/// Sends `signal` (e.g. "-HUP") to the process.
pub fn signal(running: &Running, signal: &str) {
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// SIGTERM, then the exit status.
pub fn terminate(mut running: Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    running.child.wait().unwrap()
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The PostgreSQL server to test against; `GATEHOUSE_REQUIRE_POSTGRES=1` makes its absence fatal.
pub fn postgres_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is not set");
            }
            eprintln!("GATEHOUSE_TEST_POSTGRES_URL is not set: PostgreSQL test skipped");
            None
        }
    }
}

/// A fresh database on the test server; returns its URL.
pub async fn fresh_database(server_url: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = server_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Polls `check` until it holds; fails if that takes longer than a second (the propagation bound
/// the issue sets for changes between nodes).
pub async fn within_a_second<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{what} took longer than a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The key ids a server publishes.
pub async fn published_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let set: serde_json::Value = http
        .get(format!("{base}/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// POSTs `form` to the token endpoint of `base`; its 200 answer.
pub async fn token_response(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> serde_json::Value {
    let response = http
        .post(format!("{base}/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// POSTs `form` to the token endpoint of `base`; the access token of its 200 answer.
pub async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> String {
    let body = token_response(http, base, form).await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// A person's sign-in through the built-in public client: the whole token response.
pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> serde_json::Value {
    let form = [
        ("grant_type", "password"),
        ("client_id", "gatehouse-web"),
        ("username", username),
        ("password", password),
    ];
    token_response(http, base, &form).await
}

/// A person's token, through the built-in public client.
pub async fn login(http: &reqwest::Client, base: &str, username: &str, password: &str) -> String {
    let body = sign_in(http, base, username, password).await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// A client_credentials token.
pub async fn client_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    token(
        http,
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await
}

/// Registers a machine client (RFC 7591) with `scope`: (id, secret).
pub async fn register(http: &reqwest::Client, base: &str, scope: &str) -> (String, String) {
    let registered = http
        .post(format!("{base}/oauth2/register"))
        .json(&serde_json::json!({"client_name": "test machine", "scope": scope}))
        .send()
        .await
        .unwrap();
    credentials_of(registered).await
}

/// The (client_id, client_secret) of an answer that created a client.
async fn credentials_of(response: reqwest::Response) -> (String, String) {
    let created: serde_json::Value = response.json().await.unwrap();
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// Asserts a 401 `invalid_token` answer to a GET of `url` with `token`; gives its challenge.
pub async fn refused_as_invalid(http: &reqwest::Client, url: &str, token: &str) -> String {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 401, "{url}");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    challenge
}

/// The status of a GET of `url` with `token`.
pub async fn status_of(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    token: impl std::fmt::Display,
) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A client made through the admin API with `scope`, by the administrator holding `admin`:
/// (id, secret).
pub async fn admin_client(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    scope: &str,
) -> (String, String) {
    let created = http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "svc", "scope": scope}))
        .send()
        .await
        .unwrap();
    credentials_of(created).await
}
