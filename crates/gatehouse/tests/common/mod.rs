//! Runs the real `gatehouse` binary for tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fakes;

use std::process::{Child, Command, Stdio};

pub struct Running {
    pub child: Child,
    /// The main address: the authorization server's, or the only part's (gateway, app, the
    /// machine client's `/status`).
    pub base: String,
    /// The gateway `serve` runs beside the authorization server.
    pub gateway: Option<String>,
    /// The reference apps `serve` runs, by name, with their direct addresses.
    pub apps: std::collections::HashMap<String, String>,
    /// The listener of the Prometheus figures.
    pub metrics: Option<String>,
    _ready_dir: tempfile::TempDir,
}

/// Spawns `command` and waits until it writes `GATEHOUSE_READY_FILE`: the addresses it bound,
/// as JSON. Its stdout (the banner, for people) is not read.
pub fn spawn_ready(command: Command) -> Running {
    spawn_ready_logging_to(command, Stdio::inherit())
}

/// [`spawn_ready`], with the process's log lines (stderr) going to `stderr`.
pub fn spawn_ready_logging_to(mut command: Command, stderr: Stdio) -> Running {
    let ready_dir = tempfile::tempdir().unwrap();
    let ready_file = ready_dir.path().join("ready.json");
    let mut child = command
        .env("GATEHOUSE_READY_FILE", &ready_file)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let ready: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            break serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited ({status}) before it was ready");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "not ready after 90 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let url = |key: &str| {
        ready[key]
            .as_str()
            .map(|address| format!("http://{address}"))
    };
    let apps: std::collections::HashMap<String, String> = ready["apps"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, address)| {
            (
                name.clone(),
                format!("http://{}", address.as_str().unwrap()),
            )
        })
        .collect();
    let base = url("auth")
        .or_else(|| url("gateway"))
        .or_else(|| url("rates_client").map(|u| format!("{u}/status")))
        .or_else(|| apps.values().next().cloned())
        .unwrap();
    Running {
        child,
        base,
        gateway: url("gateway"),
        apps,
        metrics: url("metrics"),
        _ready_dir: ready_dir,
    }
}

/// A loopback port free at the moment of asking, for programs that must be told one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program other than gatehouse (a proxy, an example service) listening at `base`; killed
/// when dropped.
pub struct Program {
    pub child: Child,
    pub base: String,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gatehouse` command with the test environment: quiet, and no key or database inherited.
pub fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .env_remove("GATEHOUSE_KEK")
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env_remove("GATEHOUSE_METRICS_TOKEN")
        .env_remove("GATEHOUSE_METRICS_TOKEN_FILE")
        // Tests run side by side: each node's figures on a port of its own.
        .env("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// Starts `gatehouse ARGS` on free ports and waits until it is ready.
pub fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut command = gatehouse(args, env);
    command.args(["--auth-listen", "127.0.0.1:0"]);
    if args.first() == Some(&"serve") {
        command.args(["--gateway-listen", "127.0.0.1:0", "--apps-ports-from", "0"]);
    }
    spawn_ready(command)
}

/// Starts `gatehouse gateway --config FILE` on a free port; `base` is the gateway's URL.
pub fn start_gateway(config: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut command = gatehouse(&["gateway", "--listen", "127.0.0.1:0", "--config"], env);
    command.arg(config);
    spawn_ready(command)
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

/// A fresh database named `name` on the test server; returns its URL.
pub async fn fresh_database(server_url: &str, name: &str) -> String {
    gatehouse_testkit::fresh_postgres_database(server_url, Some(name)).await
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

/// A client_credentials token, authenticating with client_secret_basic (the method clients
/// register by default, and the only one such a client may use).
pub async fn client_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let response = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Revokes `token` (RFC 7009) as the client `id`.
pub async fn revoke(http: &reqwest::Client, base: &str, id: &str, secret: &str, token: &str) {
    let response = http
        .post(format!("{base}/oauth2/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
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

/// How many tokens `node` has issued with `grant`, from its metrics listener.
pub async fn tokens_issued(http: &reqwest::Client, node: &Running, grant: &str) -> u64 {
    let text = http
        .get(format!("{}/metrics", node.metrics.as_deref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("gatehouse_tokens_issued_total{{grant=\"{grant}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}
