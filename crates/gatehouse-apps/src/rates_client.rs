//! `gatehouse rates-client`: the reference machine client. It registers itself with the
//! authorization server (RFC 7591) when it has no credentials, or when the server no longer
//! knows them, keeps its credentials in a 0600 file, gets tokens with the
//! toolkit's token client, polls the rates feed through the gateway, and serves what it knows.
//! Whatever is down, it keeps retrying with backoff and says so in `/status`; it never exits on
//! its own.
//!
//! What it serves: a status page at `/` for browsers (JSON for everyone else, as `/status`),
//! the latest rates (`/currencies`, `/currencies/{symbol}`), two actions (`POST /register`,
//! `POST /login`), a reachability check (`/test-server`), and its own OpenAPI document with
//! docs pages (`/openapi.json`, `/docs`).
//!
//! The actions change what the client holds, so a page elsewhere must not trigger them: the
//! page's buttons post forms with a per-process anti-forgery token and pass the browser's
//! same-origin check; programs post `application/json` instead, which no browser sends across
//! origins without a CORS preflight, and this server answers none.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use askama::Template;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::header::{ACCEPT, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_look::FormRejection;
use gatehouse_sdk::{Grant, TokenClient, TokenClientConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub struct RatesClientArgs {
    pub issuer: String,
    pub gateway: String,
    pub credentials: PathBuf,
    pub poll_every: Duration,
}

/// The scope the client registers for and asks tokens for.
const SCOPE: &str = "rates:read";
/// How many polls the status keeps.
const RECENT_POLLS: usize = 10;
/// How long an action may wait for the poller (it may be in the middle of a request).
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Serialize, Deserialize)]
struct Credentials {
    client_id: String,
    client_secret: String,
    token_endpoint: String,
    #[serde(default)]
    registration_access_token: Option<String>,
    /// Where the registration can be read or deleted (RFC 7592).
    #[serde(default)]
    registration_client_uri: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// Seconds since the epoch, as the server said (`client_id_issued_at`).
    #[serde(default)]
    client_id_issued_at: Option<i64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What `/status` (and `/` for programs) answers.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
struct Status {
    /// `None` until registration succeeds.
    client_id: Option<String>,
    registered: bool,
    /// The scope the client was registered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// When the server registered the client (RFC 3339), if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_at: Option<String>,
    token_expires_in_secs: Option<u64>,
    /// When the held access token expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_expires_at: Option<String>,
    last_poll_at: Option<String>,
    /// `ok`, or what went wrong.
    last_poll_outcome: Option<String>,
    consecutive_failures: u32,
    next_poll_in_secs: u64,
    /// Set when the credentials could not be saved: they live in memory only until a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials_warning: Option<String>,
    /// The latest polls, newest first.
    recent_polls: Vec<PollRecord>,
}

/// One poll of the rates feed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
struct PollRecord {
    /// RFC 3339.
    at: String,
    /// `ok`, or what went wrong.
    outcome: String,
    latency_ms: u64,
}

/// The last action taken from the page, for the page to show after its redirect.
#[derive(Debug, Clone)]
struct ActionNote {
    action: Action,
    result: Result<String, String>,
}

#[derive(Default)]
struct Shared {
    status: Status,
    snapshot: Option<Value>,
    last_action: Option<ActionNote>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Register a new client and forget the old one.
    Register,
    /// Get a new access token now.
    Login,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
        }
    }
}

struct Command {
    action: Action,
    reply: oneshot::Sender<Result<String, String>>,
}

/// What every handler can reach.
#[derive(Clone)]
struct ClientState {
    shared: Arc<Mutex<Shared>>,
    commands: mpsc::Sender<Command>,
    /// The page's anti-forgery token: random per process, never stored.
    csrf: Arc<str>,
    /// This server's own origin, for the same-origin check of form posts.
    origin: Arc<str>,
    issuer: Arc<str>,
    gateway: Arc<str>,
    http: reqwest::Client,
}

/// Why a request to the client was refused or failed; turned into HTTP in one place.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("a currency symbol is 1 to 10 letters or digits, got {0:?}")]
    BadSymbol(String),
    #[error("no currency {0} in the latest rates")]
    UnknownSymbol(String),
    #[error("no rates have been read yet; see /status")]
    NoRatesYet,
    #[error(
        "this action takes a form from the status page, or an application/json body from a program"
    )]
    NotAnAction,
    #[error("the form did not come from this client's status page; reload it and try again")]
    Forgery,
    #[error(transparent)]
    Form(#[from] FormRejection),
    #[error("{0}")]
    NotRegistered(String),
    #[error("{0}")]
    Refused(String),
    #[error("the client is busy; try again")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        let status = match &self {
            ClientError::BadSymbol(_) | ClientError::Form(_) => StatusCode::BAD_REQUEST,
            ClientError::NotAnAction => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ClientError::Forgery => StatusCode::FORBIDDEN,
            ClientError::UnknownSymbol(_) => StatusCode::NOT_FOUND,
            ClientError::NotRegistered(_) => StatusCode::CONFLICT,
            ClientError::Refused(_) => StatusCode::BAD_GATEWAY,
            ClientError::NoRatesYet | ClientError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        gatehouse_proto::web::problem(status, self.to_string())
    }
}

/// Polls the rates in the background and serves the status page, `/status` and `/currencies`
/// on `listener` until `shutdown`, within the process's budget of open `connections`.
pub async fn serve(
    args: RatesClientArgs,
    listener: tokio::net::TcpListener,
    connections: gatehouse_listen::Connections,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    let (commands, received) = mpsc::channel(4);
    let address = listener.local_addr()?;
    let state = ClientState {
        shared: shared.clone(),
        commands,
        csrf: random_token().into(),
        origin: origin(address).into(),
        issuer: args.issuer.trim_end_matches('/').into(),
        gateway: args.gateway.trim_end_matches('/').into(),
        http: http.clone(),
    };
    let poller = Poller {
        args,
        http,
        shared,
        session: None,
        failures: 0,
    };
    let poller = tokio::spawn(poller.run(received));
    let served = gatehouse_listen::serve(
        listener,
        "rates-client",
        router(state),
        connections,
        shutdown,
    )
    .await;
    poller.abort();
    served
}

fn origin(address: SocketAddr) -> String {
    format!("http://{address}")
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn router(state: ClientState) -> Router {
    let docs = gatehouse_look::docs::ApiDocument::new("rates-client", "/openapi.json")
        .into_iter()
        .collect();
    Router::new()
        .route("/", get(home))
        .route("/status", get(status))
        .route("/currencies", get(currencies))
        .route("/currencies/{symbol}", get(currency))
        .route("/register", post(register_action))
        .route("/login", post(login_action))
        .route("/test-server", get(test_server))
        .route("/openapi.json", get(openapi))
        .route(
            gatehouse_look::STYLESHEET_PATH,
            get(gatehouse_look::stylesheet),
        )
        .fallback(|| async {
            gatehouse_proto::web::problem(StatusCode::NOT_FOUND, "no such resource")
        })
        .layer(axum::middleware::from_fn(gatehouse_look::page_headers))
        .with_state(state)
        // The docs pages bring their own, looser, policy.
        .merge(gatehouse_look::docs::router("Rates client", docs))
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, to the second, as RFC 3339.
fn now_rfc3339() -> String {
    rfc3339_seconds(time::OffsetDateTime::now_utc())
}

fn rfc3339_seconds(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An RFC 3339 time as the page shows it: `2026-12-01 03:55:07 UTC`, or the time of day alone.
fn for_people(rfc3339: &str, time_of_day_only: bool) -> String {
    let Ok(at) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_owned();
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let clock = format!("{:02}:{:02}:{:02} UTC", at.hour(), at.minute(), at.second());
    if time_of_day_only {
        clock
    } else {
        let month = u8::from(at.month());
        format!("{}-{month:02}-{:02} {clock}", at.year(), at.day())
    }
}

// ---------------------------------------------------------------------------------------------
// The poller: registration, tokens and polls, one at a time, with the page's actions in between.

const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn backoff(failures: u32, normal: Duration) -> Duration {
    match failures {
        0 => normal,
        n => Duration::from_secs(1u64 << n.min(6)).min(MAX_BACKOFF),
    }
}

/// The registration in use and its token source.
struct Session {
    credentials: Credentials,
    tokens: TokenClient,
}

struct Poller {
    args: RatesClientArgs,
    http: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
    session: Option<Session>,
    failures: u32,
}

impl Poller {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let wait = self.step().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                command = commands.recv() => match command {
                    Some(command) => {
                        let result = self.act(command.action).await;
                        lock(&self.shared).last_action = Some(ActionNote {
                            action: command.action,
                            result: result.clone(),
                        });
                        // The asker may have given up waiting; the note above still tells.
                        let _ = command.reply.send(result);
                    }
                    None => tokio::time::sleep(wait).await,
                },
            }
        }
    }

    /// Registers if there is no registration yet, else polls once; how long to wait next.
    async fn step(&mut self) -> Duration {
        match &self.session {
            None => self.ensure_registered().await,
            Some(session) => {
                let (outcome, failures) = self.poll(session).await;
                self.failures = failures;
                match outcome {
                    PollStep::Next(wait) => wait,
                    PollStep::Rejected => {
                        // The server no longer knows this client (its store was reset, or the
                        // client deleted): set the old credentials aside and register again.
                        let rejected = self.args.credentials.with_extension("rejected");
                        if let Err(e) = std::fs::rename(&self.args.credentials, &rejected) {
                            tracing::warn!(error = %e, "cannot set the rejected credentials aside");
                        }
                        self.session = None;
                        let mut shared = lock(&self.shared);
                        shared.status.registered = false;
                        shared.status.client_id = None;
                        Duration::ZERO
                    }
                }
            }
        }
    }

    /// Stored credentials, or a registration made now; on failure, the backoff to wait.
    async fn ensure_registered(&mut self) -> Duration {
        match credentials(
            &self.http,
            &self.args.issuer,
            &self.args.credentials,
            &self.shared,
        )
        .await
        {
            Ok(credentials) => {
                self.failures = 0;
                self.adopt(credentials);
                Duration::ZERO
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let wait = backoff(self.failures, self.args.poll_every);
                let mut shared = lock(&self.shared);
                shared.status.last_poll_outcome = Some(format!("cannot register: {e:#}"));
                shared.status.consecutive_failures = self.failures;
                shared.status.next_poll_in_secs = wait.as_secs();
                tracing::warn!(error = %format!("{e:#}"), "registration failed; retrying");
                wait
            }
        }
    }

    /// Uses `credentials` from now on, with a fresh token source.
    fn adopt(&mut self, credentials: Credentials) {
        {
            let mut shared = lock(&self.shared);
            let status = &mut shared.status;
            status.client_id = Some(credentials.client_id.clone());
            status.registered = true;
            status.scope = credentials.scope.clone();
            status.registered_at = credentials.client_id_issued_at.map(crate::common::rfc3339);
            status.token_expires_in_secs = None;
            status.token_expires_at = None;
        }
        let tokens = token_client(&self.http, &credentials);
        self.session = Some(Session {
            credentials,
            tokens,
        });
    }

    /// Polls once and notes how it went; the next step and the failures in a row after it.
    async fn poll(&self, session: &Session) -> (PollStep, u32) {
        let url = format!("{}/api/rates", self.args.gateway.trim_end_matches('/'));
        let started = Instant::now();
        let outcome = poll_once(&session.tokens, &url).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = now_rfc3339();
        let expires = session.tokens.expires_in().await;
        let mut failures = self.failures;
        let mut rejected = false;
        let mut shared = lock(&self.shared);
        set_expiry(&mut shared.status, expires);
        shared.status.last_poll_at = Some(now.clone());
        let text = match outcome {
            Ok(snapshot) => {
                failures = 0;
                shared.snapshot = Some(snapshot);
                "ok".to_owned()
            }
            Err(PollError::ClientRejected(e)) => {
                tracing::warn!(error = %e, "the server no longer knows this client; registering again");
                rejected = true;
                e
            }
            Err(PollError::Failed(e)) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "polling the rates failed");
                e
            }
        };
        shared.status.last_poll_outcome = Some(text.clone());
        shared.status.recent_polls.insert(
            0,
            PollRecord {
                at: now,
                outcome: text,
                latency_ms,
            },
        );
        shared.status.recent_polls.truncate(RECENT_POLLS);
        if rejected {
            return (PollStep::Rejected, failures);
        }
        shared.status.consecutive_failures = failures;
        let wait = backoff(failures, self.args.poll_every)
            .min(self.args.poll_every.max(Duration::from_secs(1)) * 6);
        shared.status.next_poll_in_secs = wait.as_secs();
        (PollStep::Next(wait), failures)
    }

    /// Carries out a page's or a program's action; the text says what happened.
    async fn act(&mut self, action: Action) -> Result<String, String> {
        match action {
            Action::Register => self.register_again().await,
            Action::Login => self.login_now().await,
        }
    }

    /// A new registration replaces the old one, which is deleted at the server (RFC 7592) when
    /// the client holds its registration access token.
    async fn register_again(&mut self) -> Result<String, String> {
        let fresh = register(&self.http, &self.args.issuer)
            .await
            .map_err(|e| format!("registering failed, the old registration stays: {e:#}"))?;
        let saved = save(&self.args.credentials, &fresh);
        lock(&self.shared).status.credentials_warning = saved
            .as_ref()
            .err()
            .map(|e| format!("not saved, kept in memory until a restart: {e:#}"));
        let old = self.session.take().map(|s| s.credentials);
        let new_id = fresh.client_id.clone();
        self.failures = 0;
        self.adopt(fresh);
        tracing::info!(client_id = %new_id, "registered again");
        let forgot = match old {
            Some(old) => match forget(&self.http, &self.args.issuer, &old).await {
                Ok(()) => format!("; the old client {} was deleted", old.client_id),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot delete the old client");
                    format!(
                        "; the old client {} could not be deleted at the server: {e:#}",
                        old.client_id
                    )
                }
            },
            None => String::new(),
        };
        Ok(format!("registered as {new_id}{forgot}"))
    }

    /// A fresh token source, and a token from it now.
    async fn login_now(&mut self) -> Result<String, String> {
        let Some(session) = &mut self.session else {
            return Err("not registered yet: there is nothing to log in with".into());
        };
        let tokens = token_client(&self.http, &session.credentials);
        tokens
            .access_token()
            .await
            .map_err(|e| format!("getting a token failed, the old one stays: {e}"))?;
        let expires = tokens.expires_in().await;
        session.tokens = tokens;
        set_expiry(&mut lock(&self.shared).status, expires);
        Ok(match expires {
            Some(left) => format!("new token, valid for {} s", left.as_secs()),
            None => "new token".to_owned(),
        })
    }
}

enum PollStep {
    Next(Duration),
    Rejected,
}

fn set_expiry(status: &mut Status, expires: Option<Duration>) {
    status.token_expires_in_secs = expires.map(|d| d.as_secs());
    status.token_expires_at = expires.map(|d| rfc3339_seconds(time::OffsetDateTime::now_utc() + d));
}

fn token_client(http: &reqwest::Client, credentials: &Credentials) -> TokenClient {
    TokenClient::with_http(
        http.clone(),
        TokenClientConfig::new(
            credentials.token_endpoint.clone(),
            Grant::ClientCredentials {
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret.clone(),
                scope: Some(SCOPE.into()),
            },
        ),
    )
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
    let credentials = register(http, issuer).await?;
    // Registered now: a failure to save must not lead to registering again on every retry.
    if let Err(e) = save(path, &credentials) {
        tracing::error!(error = %format!("{e:#}"), "cannot save the credentials; keeping them in memory");
        lock(shared).status.credentials_warning =
            Some(format!("not saved, kept in memory until a restart: {e:#}"));
    }
    Ok(credentials)
}

/// A new registration (RFC 7591) at the issuer's registration endpoint.
async fn register(http: &reqwest::Client, issuer: &str) -> anyhow::Result<Credentials> {
    let metadata = gatehouse_sdk::discover(http, issuer).await?;
    let endpoint = metadata
        .registration_endpoint
        .context("the issuer does not offer dynamic client registration")?;
    let response = http
        .post(&endpoint)
        .json(&serde_json::json!({
            "client_name": "gatehouse rates client",
            "grant_types": ["client_credentials"],
            "scope": SCOPE,
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
        registration_client_uri: field("registration_client_uri").ok(),
        scope: field("scope").ok(),
        client_id_issued_at: body["client_id_issued_at"].as_i64(),
    };
    tracing::info!(client_id = %credentials.client_id, "registered with the authorization server");
    Ok(credentials)
}

/// Deletes a registration at the server (RFC 7592), with its registration access token.
async fn forget(http: &reqwest::Client, issuer: &str, old: &Credentials) -> anyhow::Result<()> {
    let token = old
        .registration_access_token
        .as_deref()
        .context("its registration access token is not known")?;
    let uri = match &old.registration_client_uri {
        Some(uri) => uri.clone(),
        None => {
            let metadata = gatehouse_sdk::discover(http, issuer).await?;
            let endpoint = metadata
                .registration_endpoint
                .context("the issuer does not offer dynamic client registration")?;
            format!("{endpoint}/{}", old.client_id)
        }
    };
    let response = http.delete(&uri).bearer_auth(token).send().await?;
    match response.status() {
        status if status.is_success() => Ok(()),
        // RFC 7592 §2: the answer for a client that is gone, or a token that does not fit.
        StatusCode::UNAUTHORIZED => {
            anyhow::bail!("the server no longer knows it, or its registration token")
        }
        status => anyhow::bail!("the server answered {status}"),
    }
}

/// Writes the file beside its final name (mode 0600) and renames it into place, so a crash
/// never leaves half a file.
fn save(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(credentials)?;
    gatehouse_sdk::files::replace_private_file(path, &text)
        .with_context(|| format!("cannot write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// What it serves.

/// Whether the caller wants a page: browsers name `text/html` in `Accept`; programs that name
/// nothing, `*/*` or JSON get JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

#[derive(Debug, Default, Deserialize)]
struct HomeQuery {
    /// Set by the redirect after an action: which one (`register` or `login`).
    done: Option<String>,
}

/// The status page for browsers; the status as JSON for everyone else.
#[utoipa::path(get, path = "/", tag = "rates-client",
    responses((status = 200, description = "The status page (text/html), or the status as JSON", body = Status)))]
async fn home(
    State(state): State<ClientState>,
    headers: HeaderMap,
    query: Result<Query<HomeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ClientError> {
    if !wants_html(&headers) {
        return Ok(Json(lock(&state.shared).status.clone()).into_response());
    }
    // A query that cannot be read only means no note to show.
    let done = query.ok().and_then(|Query(q)| q.done);
    let page = StatusPage::new(&state, done.as_deref());
    page.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| ClientError::Internal(format!("the page failed to render: {e}")))
}

/// The client's status: registration, token, polls.
#[utoipa::path(get, path = "/status", tag = "rates-client",
    responses((status = 200, body = Status)))]
async fn status(State(state): State<ClientState>) -> Json<Status> {
    Json(lock(&state.shared).status.clone())
}

/// The latest rates, as the rates feed gave them.
#[utoipa::path(get, path = "/currencies", tag = "rates-client",
    responses((status = 200, body = Object, description = "The rates feed's latest answer"),
        (status = 503, description = "No rates read yet")))]
async fn currencies(State(state): State<ClientState>) -> Result<Json<Value>, ClientError> {
    lock(&state.shared)
        .snapshot
        .clone()
        .map(Json)
        .ok_or(ClientError::NoRatesYet)
}

/// One currency's latest rate.
#[utoipa::path(get, path = "/currencies/{symbol}", tag = "rates-client",
    params(("symbol" = String, Path, example = "BTC")),
    responses((status = 200, body = Object), (status = 400), (status = 404),
        (status = 503, description = "No rates read yet")))]
async fn currency(
    State(state): State<ClientState>,
    axum::extract::Path(symbol): axum::extract::Path<String>,
) -> Result<Json<Value>, ClientError> {
    if !((1..=10).contains(&symbol.len()) && symbol.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err(ClientError::BadSymbol(symbol));
    }
    let symbol = symbol.to_ascii_uppercase();
    let shared = lock(&state.shared);
    let snapshot = shared.snapshot.as_ref().ok_or(ClientError::NoRatesYet)?;
    snapshot
        .as_array()
        .into_iter()
        .flatten()
        .find(|rate| rate["symbol"].as_str() == Some(symbol.as_str()))
        .cloned()
        .map(Json)
        .ok_or(ClientError::UnknownSymbol(symbol))
}

/// What an action did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ActionOutcome {
    action: String,
    outcome: String,
    client_id: Option<String>,
}

/// Registers a new client and forgets the old one (deleted at the server when it can be).
/// Programs post `application/json` (`{}`); the status page posts its form.
#[utoipa::path(post, path = "/register", tag = "rates-client", operation_id = "register",
    request_body(content = Object, content_type = "application/json", description = "{}"),
    responses((status = 200, body = ActionOutcome), (status = 303, description = "Back to the page (forms)"),
        (status = 403), (status = 415), (status = 502, description = "The server refused")))]
async fn register_action(State(state): State<ClientState>, request: Request) -> Response {
    act(state, request, Action::Register).await
}

/// Gets a new access token now, replacing the held one.
#[utoipa::path(post, path = "/login", tag = "rates-client", operation_id = "login",
    request_body(content = Object, content_type = "application/json", description = "{}"),
    responses((status = 200, body = ActionOutcome), (status = 303, description = "Back to the page (forms)"),
        (status = 403), (status = 409, description = "Not registered yet"), (status = 415),
        (status = 502, description = "The server refused")))]
async fn login_action(State(state): State<ClientState>, request: Request) -> Response {
    act(state, request, Action::Login).await
}

/// How an action was asked for.
enum Asked {
    /// The status page's form: answer with a redirect back to it.
    Page,
    /// A program: answer with JSON.
    Program,
}

async fn act(state: ClientState, request: Request, action: Action) -> Response {
    match act_checked(&state, request, action).await {
        Ok((Asked::Page, _)) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, format!("/?done={}", action.name()))],
        )
            .into_response(),
        Ok((Asked::Program, outcome)) => Json(ActionOutcome {
            action: action.name().to_owned(),
            outcome,
            client_id: lock(&state.shared).status.client_id.clone(),
        })
        .into_response(),
        Err((Asked::Page, ClientError::Refused(_) | ClientError::NotRegistered(_))) => {
            // The note the poller left tells the page what went wrong.
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, format!("/?done={}", action.name()))],
            )
                .into_response()
        }
        Err((Asked::Page, e)) => {
            // A person at the page: the page again, saying what went wrong, with the status.
            let code = e.into_response().status();
            let mut page = StatusPage::new(&state, None);
            page.failure = Some(refusal_text(action, code));
            match page.render() {
                Ok(html) => (code, Html(html)).into_response(),
                Err(_) => gatehouse_proto::web::problem(code, refusal_text(action, code)),
            }
        }
        Err((Asked::Program, e)) => e.into_response(),
    }
}

/// What the page says when an action was refused before it ran.
fn refusal_text(action: Action, code: StatusCode) -> String {
    let what = match action {
        Action::Register => "Registering again",
        Action::Login => "Getting a new token",
    };
    match code {
        StatusCode::FORBIDDEN => format!(
            "{what} was refused: the form did not come from this page. Reload the page and try again."
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            format!("{what} did not happen: the client is busy. Try again in a moment.")
        }
        _ => format!("{what} did not happen (HTTP {}).", code.as_u16()),
    }
}

async fn act_checked(
    state: &ClientState,
    request: Request,
    action: Action,
) -> Result<(Asked, String), (Asked, ClientError)> {
    let headers = request.headers().clone();
    let media = gatehouse_proto::web::media_type(&headers);
    let asked = match media.as_deref() {
        Some("application/json") => Asked::Program,
        Some("application/x-www-form-urlencoded") => Asked::Page,
        _ => return Err((Asked::Program, ClientError::NotAnAction)),
    };
    if !gatehouse_look::posted_from_same_origin(&headers, &state.origin) {
        return Err((asked, ClientError::Forgery));
    }
    if let Asked::Page = asked {
        let form = match gatehouse_look::Form::<ClientError>::from_request(request, &()).await {
            Ok(form) => form,
            Err(e) => return Err((asked, e)),
        };
        let token = form.get("csrf_token").unwrap_or_default();
        let fits = bool::from(subtle::ConstantTimeEq::ct_eq(
            token.as_bytes(),
            state.csrf.as_bytes(),
        ));
        if !fits {
            return Err((asked, ClientError::Forgery));
        }
    }
    let (reply, answer) = oneshot::channel();
    let sent = state.commands.try_send(Command { action, reply });
    if sent.is_err() {
        return Err((asked, ClientError::Busy));
    }
    let result = match tokio::time::timeout(ACTION_TIMEOUT, answer).await {
        Ok(Ok(result)) => result,
        _ => return Err((asked, ClientError::Busy)),
    };
    match result {
        Ok(outcome) => Ok((asked, outcome)),
        Err(e) if action == Action::Login && lock(&state.shared).status.client_id.is_none() => {
            Err((asked, ClientError::NotRegistered(e)))
        }
        Err(e) => Err((asked, ClientError::Refused(e))),
    }
}

/// What a reachability check found for one server.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Reachability {
    /// What was asked.
    url: String,
    reachable: bool,
    /// The HTTP status it answered, if it answered.
    status: Option<u16>,
    /// What that means.
    detail: String,
    latency_ms: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ServerCheck {
    authorization_server: Reachability,
    gateway: Reachability,
}

/// Asks the authorization server for its metadata and the gateway for the rates without a
/// token, and says what each answered.
#[utoipa::path(get, path = "/test-server", tag = "rates-client",
    responses((status = 200, body = ServerCheck)))]
async fn test_server(State(state): State<ClientState>) -> Json<ServerCheck> {
    let metadata_url = format!("{}/.well-known/oauth-authorization-server", state.issuer);
    let rates_url = format!("{}/api/rates", state.gateway);
    let (auth, gateway) = tokio::join!(
        probe(&state.http, &metadata_url, |status, body| {
            match (status, body.get("issuer").and_then(Value::as_str)) {
                (200, Some(issuer)) if issuer.trim_end_matches('/') == &*state.issuer => {
                    (true, format!("the metadata names the issuer {issuer}"))
                }
                (200, Some(issuer)) => (
                    false,
                    format!("the metadata names another issuer, {issuer}"),
                ),
                (200, None) => (false, "the answer is not server metadata".to_owned()),
                (status, _) => (false, format!("the metadata is not served (HTTP {status})")),
            }
        }),
        probe(&state.http, &rates_url, |status, _| match status {
            401 => (
                true,
                "it refused a request without a token, as the rates route should".to_owned(),
            ),
            200 => (true, "it answered the rates without a token".to_owned()),
            status => (true, format!("it answered HTTP {status}")),
        }),
    );
    Json(ServerCheck {
        authorization_server: auth,
        gateway,
    })
}

async fn probe(
    http: &reqwest::Client,
    url: &str,
    judge: impl FnOnce(u16, &Value) -> (bool, String),
) -> Reachability {
    let started = Instant::now();
    let answer = http.get(url).send().await;
    let (reachable, status, detail) = match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let (reachable, detail) = judge(status, &body);
            (reachable, Some(status), detail)
        }
        Err(e) if e.is_timeout() => (false, None, "no answer in time".to_owned()),
        Err(e) if e.is_connect() => (false, None, "nothing accepts connections there".to_owned()),
        Err(e) => (false, None, format!("the request failed: {e}")),
    };
    Reachability {
        url: url.to_owned(),
        reachable,
        status,
        detail,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Gatehouse rates client",
        description = "The reference machine client's own API: its status, the rates it read, and actions for operators."
    ),
    paths(
        home,
        status,
        currencies,
        currency,
        register_action,
        login_action,
        test_server
    ),
    components(schemas(Status, PollRecord, ActionOutcome, Reachability, ServerCheck)),
    modifiers(&DOC_RESPONSES)
)]
struct Doc;

/// Nothing here needs a token or a body: the document only gets complete Response Objects.
const DOC_RESPONSES: gatehouse_proto::openapi::CommonResponses =
    gatehouse_proto::openapi::CommonResponses {
        error_body: |_| gatehouse_proto::openapi::ErrorBody::Problem,
        json_body: &[],
        oauth_body: &[],
        bearer: &[],
        scoped: &[],
        path_params: &[],
        every: &[],
    };

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<Doc as utoipa::OpenApi>::openapi())
}

// ---------------------------------------------------------------------------------------------
// The status page.

struct PollRow {
    at: String,
    ok: bool,
    outcome: String,
    latency_ms: u64,
}

struct RateRow {
    symbol: String,
    rate: String,
    change: String,
    updated_at: String,
}

#[derive(Template)]
#[template(path = "rates_client.html")]
struct StatusPage {
    csrf: String,
    issuer: String,
    gateway: String,
    /// What the last action did, right after it.
    notice: Option<String>,
    failure: Option<String>,
    registered: bool,
    client_id: String,
    scope: String,
    registered_at: String,
    token: String,
    last_outcome: String,
    last_ok: bool,
    failures: u32,
    next_poll_in_secs: u64,
    warning: Option<String>,
    polls: Vec<PollRow>,
    rates: Vec<RateRow>,
}

impl StatusPage {
    fn new(state: &ClientState, done: Option<&str>) -> Self {
        let shared = lock(&state.shared);
        let status = &shared.status;
        let note = shared
            .last_action
            .as_ref()
            .filter(|note| done == Some(note.action.name()));
        let (notice, failure) = match note.map(|n| &n.result) {
            Some(Ok(text)) => (Some(sentence(text)), None),
            Some(Err(text)) => (None, Some(sentence(text))),
            None => (None, None),
        };
        let text =
            |value: &Option<String>, none: &str| value.clone().unwrap_or_else(|| none.to_owned());
        let token = match (&status.token_expires_at, status.token_expires_in_secs) {
            (Some(at), Some(left)) if left > 0 => {
                format!("expires {} (in {left} s)", for_people(at, false))
            }
            (Some(at), _) => format!("expired {}", for_people(at, false)),
            _ => "none held yet".to_owned(),
        };
        let rates = shared
            .snapshot
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|rate| {
                let field = |name: &str| match &rate[name] {
                    Value::String(s) => s.clone(),
                    Value::Null => "—".to_owned(),
                    other => other.to_string(),
                };
                RateRow {
                    symbol: field("symbol"),
                    rate: field("rate"),
                    change: field("change_24h"),
                    updated_at: for_people(&field("updated_at"), true),
                }
            })
            .collect();
        Self {
            csrf: state.csrf.to_string(),
            issuer: state.issuer.to_string(),
            gateway: state.gateway.to_string(),
            notice,
            failure,
            registered: status.registered,
            client_id: text(&status.client_id, "not registered yet"),
            scope: text(&status.scope, "unknown"),
            registered_at: status
                .registered_at
                .as_deref()
                .map_or_else(|| "unknown".to_owned(), |at| for_people(at, false)),
            token,
            last_outcome: text(&status.last_poll_outcome, "no poll yet"),
            last_ok: status.last_poll_outcome.as_deref() == Some("ok"),
            failures: status.consecutive_failures,
            next_poll_in_secs: status.next_poll_in_secs,
            warning: status.credentials_warning.clone(),
            polls: status
                .recent_polls
                .iter()
                .map(|p| PollRow {
                    at: for_people(&p.at, true),
                    ok: p.outcome == "ok",
                    outcome: p.outcome.clone(),
                    latency_ms: p.latency_ms,
                })
                .collect(),
            rates,
        }
    }
}

/// `text` with a capital first letter, for a line of its own on the page.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
