//! `gatehouse rates-client`: the reference machine client. It registers itself with the
//! authorization server (RFC 7591) when it has no credentials, or when the server no longer
//! knows them, keeps its credentials in a 0600 file, gets tokens with the
//! toolkit's token client, polls the rates feed through the gateway, and serves what it knows.
//! Whatever is down, it keeps retrying with backoff and says so in `/status`; it never exits on
//! its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_sdk::{Grant, TokenClient, TokenClientConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct RatesClientArgs {
    pub issuer: String,
    pub gateway: String,
    pub credentials: PathBuf,
    pub poll_every: Duration,
}

#[derive(Clone, Serialize, Deserialize)]
struct Credentials {
    client_id: String,
    client_secret: String,
    token_endpoint: String,
    #[serde(default)]
    registration_access_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
struct Status {
    /// `None` until registration succeeds.
    client_id: Option<String>,
    registered: bool,
    token_expires_in_secs: Option<u64>,
    last_poll_at: Option<String>,
    /// `ok`, or what went wrong.
    last_poll_outcome: Option<String>,
    consecutive_failures: u32,
    next_poll_in_secs: u64,
    /// Set when the credentials could not be saved: they live in memory only until a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials_warning: Option<String>,
}

#[derive(Default)]
struct Shared {
    status: Status,
    snapshot: Option<Value>,
}

/// Polls the rates in the background and serves `/status` and `/currencies` on `listener` until
/// `shutdown`.
pub async fn serve(
    args: RatesClientArgs,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let api = Router::new()
        .route("/status", get(status))
        .route("/currencies", get(currencies))
        .with_state(shared.clone());
    let poller = tokio::spawn(poll_forever(args, shared));
    let served = axum::serve(listener, api)
        .with_graceful_shutdown(shutdown)
        .await;
    poller.abort();
    served
}

async fn status(
    axum::extract::State(shared): axum::extract::State<Arc<Mutex<Shared>>>,
) -> Json<Status> {
    Json(lock(&shared).status.clone())
}

async fn currencies(
    axum::extract::State(shared): axum::extract::State<Arc<Mutex<Shared>>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match lock(&shared).snapshot.clone() {
        Some(snapshot) => Json(snapshot).into_response(),
        None => gatehouse_proto::web::problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no rates have been read yet; see /status",
        ),
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn backoff(failures: u32, normal: Duration) -> Duration {
    match failures {
        0 => normal,
        n => Duration::from_secs(1u64 << n.min(6)).min(MAX_BACKOFF),
    }
}

async fn poll_forever(args: RatesClientArgs, shared: Arc<Mutex<Shared>>) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    loop {
        let credentials = register_until_done(&http, &args, &shared).await;
        poll_until_rejected(&http, &args, &shared, &credentials).await;
        // The server no longer knows this client (its store was reset, or the client deleted):
        // set the old credentials aside and register again.
        let rejected = args.credentials.with_extension("rejected");
        if let Err(e) = std::fs::rename(&args.credentials, &rejected) {
            tracing::warn!(error = %e, "cannot set the rejected credentials aside");
        }
        let mut shared = lock(&shared);
        shared.status.registered = false;
        shared.status.client_id = None;
    }
}

/// Registration (or the stored credentials), as often as it takes.
async fn register_until_done(
    http: &reqwest::Client,
    args: &RatesClientArgs,
    shared: &Mutex<Shared>,
) -> Credentials {
    let mut failures = 0;
    loop {
        match credentials(http, &args.issuer, &args.credentials, shared).await {
            Ok(credentials) => {
                let mut shared = lock(shared);
                shared.status.client_id = Some(credentials.client_id.clone());
                shared.status.registered = true;
                return credentials;
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, args.poll_every);
                {
                    let mut shared = lock(shared);
                    shared.status.last_poll_outcome = Some(format!("cannot register: {e:#}"));
                    shared.status.consecutive_failures = failures;
                    shared.status.next_poll_in_secs = wait.as_secs();
                }
                tracing::warn!(error = %format!("{e:#}"), "registration failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Polls the rates until the token endpoint says the client is unknown.
async fn poll_until_rejected(
    http: &reqwest::Client,
    args: &RatesClientArgs,
    shared: &Mutex<Shared>,
    credentials: &Credentials,
) {
    let tokens = TokenClient::with_http(
        http.clone(),
        TokenClientConfig::new(
            credentials.token_endpoint.clone(),
            Grant::ClientCredentials {
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret.clone(),
                scope: Some("rates:read".into()),
            },
        ),
    );
    let url = format!("{}/api/rates", args.gateway.trim_end_matches('/'));
    let mut failures = 0u32;
    loop {
        let outcome = poll_once(&tokens, &url).await;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let expires = tokens.expires_in().await.map(|d| d.as_secs());
        let wait = {
            let mut shared = lock(shared);
            shared.status.last_poll_at = Some(now);
            shared.status.token_expires_in_secs = expires;
            match outcome {
                Ok(snapshot) => {
                    failures = 0;
                    shared.snapshot = Some(snapshot);
                    shared.status.last_poll_outcome = Some("ok".into());
                }
                Err(PollError::ClientRejected(e)) => {
                    tracing::warn!(error = %e, "the server no longer knows this client; registering again");
                    shared.status.last_poll_outcome = Some(e);
                    return;
                }
                Err(PollError::Failed(e)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "polling the rates failed");
                    shared.status.last_poll_outcome = Some(e);
                }
            }
            shared.status.consecutive_failures = failures;
            let wait = backoff(failures, args.poll_every)
                .min(args.poll_every.max(Duration::from_secs(1)) * 6);
            shared.status.next_poll_in_secs = wait.as_secs();
            wait
        };
        tokio::time::sleep(wait).await;
    }
}

enum PollError {
    /// The token endpoint does not know this client any more.
    ClientRejected(String),
    Failed(String),
}

async fn poll_once(tokens: &TokenClient, url: &str) -> Result<Value, PollError> {
    let response = tokens
        .send(|http| http.get(url))
        .await
        .map_err(|e| match &e {
            gatehouse_sdk::SdkError::Refused { error, .. } if error == "invalid_client" => {
                PollError::ClientRejected(e.to_string())
            }
            _ => PollError::Failed(e.to_string()),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(PollError::Failed(format!(
            "the rates feed answered {status}"
        )));
    }
    response
        .json::<Value>()
        .await
        .map_err(|e| PollError::Failed(format!("the rates feed sent something unreadable: {e}")))
}

/// The stored credentials, or a registration made now and stored. Registers only when there is
/// no file at all: an unreadable one is an error to fix, not a reason to register again.
async fn credentials(
    http: &reqwest::Client,
    issuer: &str,
    path: &Path,
    shared: &Mutex<Shared>,
) -> anyhow::Result<Credentials> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is not a credentials file", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let metadata = gatehouse_sdk::discover(http, issuer).await?;
    let endpoint = metadata
        .registration_endpoint
        .context("the issuer does not offer dynamic client registration")?;
    let response = http
        .post(&endpoint)
        .json(&serde_json::json!({
            "client_name": "gatehouse rates client",
            "grant_types": ["client_credentials"],
            "scope": "rates:read",
        }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        anyhow::bail!(
            "registration was refused ({status}): {}",
            body["error_description"]
        );
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the registration answer has no {name}"))
    };
    let credentials = Credentials {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
        token_endpoint: metadata.token_endpoint,
        registration_access_token: field("registration_access_token").ok(),
    };
    tracing::info!(client_id = %credentials.client_id, "registered with the authorization server");
    // Registered now: a failure to save must not lead to registering again on every retry.
    if let Err(e) = save(path, &credentials) {
        tracing::error!(error = %format!("{e:#}"), "cannot save the credentials; keeping them in memory");
        lock(shared).status.credentials_warning =
            Some(format!("not saved, kept in memory until a restart: {e:#}"));
    }
    Ok(credentials)
}

/// Writes the file beside its final name (mode 0600) and renames it into place, so a crash
/// never leaves half a file.
fn save(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(credentials)?;
    gatehouse_sdk::files::replace_private_file(path, &text)
        .with_context(|| format!("cannot write {}", path.display()))
}
