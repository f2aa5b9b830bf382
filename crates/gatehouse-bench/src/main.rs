//! `revocation-bench`: how fast a revocation reaches running gateways, with and without a flood of
//! other revocations. It backs `bench/revocations.sh` and talks plain HTTP only: to one or more
//! authorization servers and to one or more gateways in front of a route that needs `--scope`.
//!
//! `revocation-bench run` does three things at once for `--duration-secs`:
//!
//! - **flood** (unless `--flood-rate 0`): `--flood-clients` self-registered clients, each looping
//!   `client_credentials` token → `POST /oauth2/revoke` of that token, paced to reach
//!   `--flood-rate` revocations per second in total, spread round-robin over the `--auth` nodes;
//! - **probe**: every `--probe-interval-ms`, a fresh token from node A (`--probe-auth`) is called
//!   at every ready gateway (it must answer 200), revoked at node A, then called again every
//!   `--poll-interval-ms` until the gateway answers 401. The propagation time runs from the
//!   revoke call's answer to that first 401; after `--probe-timeout-secs` the probe counts as a
//!   timeout;
//! - **watch**: from the flood's start to the end, valid tokens (renewed every
//!   `--watch-renew-secs`) are sent to every ready gateway at `--watch-rate` requests per second;
//!   any answer but 200 is counted by status (a 503 means a valid token was refused).
//!
//! A `--late-gateway` may start during the run: it is probed and watched from the moment its
//! `/_gatehouse/readyz` answers 200. The results come as readable lines on stdout, then one JSON
//! line (the last line of stdout) for scripts.
//!
//! `revocation-bench upstream --listen ADDR` is the trivial upstream behind the gateway's route:
//! `200 ok` to anything.
//!
//! `revocation-bench logins` (behind `bench/logins.sh`) measures fair password hashing: one
//! source address floods the token endpoint with wrong password grants while legitimate logins
//! come from another address; it reports the legitimate logins per second and their latency.
//!
//! For `bench/scale.sh`: `revocation-bench seed` fills a store with many clients, users, audit
//! events and revoked tokens (see `seed.rs`); `revocation-bench tokens` drives
//! `client_credentials` over many distinct seeded clients and `revocation-bench signups` drives
//! `POST /users` with a new username each time (see `load.rs`).
//!
//! `revocation-bench sign` measures what one access token's signature costs, by algorithm
//! (see `signing.rs`): the floor under the token endpoint's CPU per token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

mod load;
mod seed;
mod signing;

#[derive(Parser)]
#[command(
    name = "revocation-bench",
    about = "Measures how fast a revocation reaches running gateways, under a flood of revocations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Flood, probe and watch for a while, then report.
    Run(Box<RunArgs>),
    /// Legitimate password logins from one address while another floods with wrong guesses.
    Logins(LoginArgs),
    /// Fill a store (SQLite or PostgreSQL, schema made by gatehouse) with seeded clients, users,
    /// audit events and revoked tokens, straight with SQL.
    Seed(Box<seed::SeedArgs>),
    /// client_credentials grants cycling over many seeded clients (client cache misses).
    Tokens(load::TokensArgs),
    /// Sign-ups (POST /users), each with a new username.
    Signups(load::SignupArgs),
    /// refresh_token grants, each worker following its own chain of rotating refresh tokens.
    Refreshes(load::RefreshArgs),
    /// CPU per access-token signature, by algorithm, with the server's own signing code.
    Sign(signing::SignArgs),
    /// Serve `200 ok` to every request: the upstream behind the benchmark's gateway route.
    Upstream {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9300")]
        listen: SocketAddr,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// An authorization server's base URL (repeatable); the flood is spread over all of them.
    #[arg(long = "auth", required = true)]
    auth: Vec<String>,
    /// Node A: where every client registers, and where the probe and the watchers get their
    /// tokens and the probe revokes [default: the first --auth].
    #[arg(long)]
    probe_auth: Option<String>,
    /// A gateway running from the start, as NAME=URL or URL (repeatable). Waited for (its
    /// /_gatehouse/readyz) before the run starts.
    #[arg(long = "gateway")]
    gateways: Vec<GatewaySpec>,
    /// A gateway that may start during the run, as NAME=URL or URL (repeatable): probed and
    /// watched from when its /_gatehouse/readyz answers 200.
    #[arg(long = "late-gateway")]
    late_gateways: Vec<GatewaySpec>,
    /// The path called at each gateway; its route must need --scope.
    #[arg(long, default_value = "/bench/x")]
    path: String,
    /// The scope every client registers for and asks for.
    #[arg(long, default_value = "rates:read")]
    scope: String,
    /// How long probes run, after the flood's warm-up.
    #[arg(long, default_value_t = 20.0)]
    duration_secs: f64,
    /// Revocations per second in total; 0 runs without a flood (idle propagation).
    #[arg(long, default_value_t = 1000.0)]
    flood_rate: f64,
    /// Flooding clients, each with its own registration.
    #[arg(long, default_value_t = 4)]
    flood_clients: usize,
    /// Token + revoke pairs in flight per flooding client; a due pair that finds them all busy
    /// is skipped and counted.
    #[arg(long, default_value_t = 32)]
    flood_max_inflight: usize,
    /// The flood runs this long before probes and watchers start.
    #[arg(long, default_value_t = 2.0)]
    flood_warmup_secs: f64,
    /// A new probe starts this often.
    #[arg(long, default_value_t = 250)]
    probe_interval_ms: u64,
    /// A revoked token is sent to the gateway this often until it answers 401.
    #[arg(long, default_value_t = 5)]
    poll_interval_ms: u64,
    /// A probe whose token is still accepted this long after its revocation is a timeout.
    #[arg(long, default_value_t = 10.0)]
    probe_timeout_secs: f64,
    /// Probes in flight at most (slow propagation would otherwise pile up pollers); a probe due
    /// while they are all busy is skipped and counted.
    #[arg(long, default_value_t = 4)]
    max_inflight_probes: usize,
    /// Requests per second with a valid token, per gateway; 0 turns the watchers off.
    #[arg(long, default_value_t = 50.0)]
    watch_rate: f64,
    /// The watchers' token is replaced this often.
    #[arg(long, default_value_t = 5.0)]
    watch_renew_secs: f64,
    /// Time limit of each HTTP request.
    #[arg(long, default_value_t = 5.0)]
    request_timeout_secs: f64,
    /// How long to wait for each --gateway to be ready before starting.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout_secs: f64,
    /// A name for this run, repeated in the JSON line.
    #[arg(long, default_value = "run")]
    label: String,
    /// Progress lines on stderr this often (0: none).
    #[arg(long, default_value_t = 5.0)]
    progress_secs: f64,
}

#[derive(Args, Clone)]
struct LoginArgs {
    /// The authorization server's base URL.
    #[arg(long)]
    auth: String,
    /// The client the logins go through (a public client: no secret).
    #[arg(long, default_value = "gatehouse-web")]
    client_id: String,
    /// The legitimate user's name and password.
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    /// The address legitimate logins come from (any 127.x address is on the loopback interface).
    #[arg(long, default_value = "127.0.0.3")]
    visitor_ip: std::net::IpAddr,
    /// The address the flood comes from.
    #[arg(long, default_value = "127.0.0.2")]
    flood_ip: std::net::IpAddr,
    /// Wrong password grants in flight from the flood address (each for a different unknown
    /// name, so no lock or delay slows it); 0 runs without a flood.
    #[arg(long, default_value_t = 128)]
    flood_concurrency: usize,
    /// Legitimate logins in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long legitimate logins are measured.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// The flood runs this long before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Time limit of each HTTP request.
    #[arg(long, default_value_t = 30.0)]
    request_timeout_secs: f64,
    /// A name for this run, repeated in the JSON line.
    #[arg(long, default_value = "logins")]
    label: String,
}

#[derive(Clone, Debug)]
struct GatewaySpec {
    name: String,
    url: String,
}

impl FromStr for GatewaySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = match s.split_once('=') {
            Some((name, url)) if !name.contains("://") => (name.to_owned(), url.to_owned()),
            _ => (s.to_owned(), s.to_owned()),
        };
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        Ok(Self {
            name,
            url: url.trim_end_matches('/').to_owned(),
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args).await,
        Command::Logins(args) => logins(args).await,
        Command::Seed(args) => seed::seed(*args).await,
        Command::Tokens(args) => load::tokens(args).await,
        Command::Signups(args) => load::signups(args).await,
        Command::Refreshes(args) => load::refreshes(args).await,
        Command::Sign(args) => signing::sign(args).await,
        Command::Upstream { listen } => upstream(listen).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revocation-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn upstream(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app = axum::Router::new().fallback(|| async { "ok\n" });
    println!("upstream listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

// ------------------------------------------------------------------------------- counting --

/// Outcomes by kind ("429", "token 503", "timeout", …).
#[derive(Default, Debug)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn json(&self) -> Value {
        json!(self.0)
    }

    fn human(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A transport failure as a short key.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "transport error"
    }
}

#[derive(Default)]
struct GatewayStats {
    /// Probes whose token was accepted first and then revoked.
    probes: u64,
    /// Propagation times of the probes that saw their 401, in ms.
    latencies_ms: Vec<f64>,
    timeouts: u64,
    /// Requests with a valid token (watchers, and each probe's first call).
    valid_requests: u64,
    /// Their answers other than 200.
    valid_non200: Tally,
    /// While polling a revoked token: answers other than 200 and 401.
    poll_other: Tally,
}

struct Gateway {
    name: String,
    url: String,
    late: bool,
    ready: AtomicBool,
    /// When it first answered /_gatehouse/readyz with 200, since the run started.
    ready_after: Mutex<Option<Duration>>,
    stats: Mutex<GatewayStats>,
}

impl Gateway {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct ProbeStats {
    started: u64,
    skipped: u64,
    token_errors: Tally,
    revoke_errors: Tally,
    revoke_ms: Vec<f64>,
    watch_token_errors: Tally,
}

#[derive(Default)]
struct FloodStats {
    errors: Tally,
    skipped: u64,
}

// ------------------------------------------------------------------------------ OAuth calls --

#[derive(Clone)]
struct Credentials {
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

async fn register(
    http: &reqwest::Client,
    auth: &str,
    name: &str,
    scope: &str,
) -> anyhow::Result<Credentials> {
    let response = http
        .post(format!("{auth}/oauth2/register"))
        .json(&json!({
            "client_name": name,
            "grant_types": ["client_credentials"],
            "scope": scope,
        }))
        .send()
        .await
        .with_context(|| format!("POST {auth}/oauth2/register"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status != StatusCode::CREATED {
        bail!("POST {auth}/oauth2/register answered {status}: {body}");
    }
    let registered: Registered =
        serde_json::from_str(&body).context("the registration answer has no client credentials")?;
    Ok(Credentials {
        client_id: registered.client_id,
        client_secret: registered.client_secret,
    })
}

/// A client_credentials token, or the kind of failure.
async fn token(
    http: &reqwest::Client,
    auth: &str,
    client: &Credentials,
    scope: &str,
) -> Result<String, String> {
    let response = http
        .post(format!("{auth}/oauth2/token"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .map_err(|e| format!("token {}", transport_kind(&e)))?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(format!("token {}", status.as_u16()));
    }
    let answer: TokenAnswer = response
        .json()
        .await
        .map_err(|_| "token: bad answer".to_owned())?;
    Ok(answer.access_token)
}

/// Revokes an access token (RFC 7009), or says how that failed.
async fn revoke(
    http: &reqwest::Client,
    auth: &str,
    client: &Credentials,
    token: &str,
) -> Result<(), String> {
    let response = http
        .post(format!("{auth}/oauth2/revoke"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .map_err(|e| format!("revoke {}", transport_kind(&e)))?;
    let status = response.status();
    // Read the (empty) body so the connection goes back to the pool.
    let _ = response.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("revoke {}", status.as_u16()))
    }
}

/// Calls the route with a bearer token: the status, or the kind of transport failure.
async fn call_gateway(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<StatusCode, &'static str> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| transport_kind(&e))?;
    let status = response.status();
    let _ = response.bytes().await;
    Ok(status)
}

async fn is_ready(http: &reqwest::Client, gateway: &str) -> bool {
    match http
        .get(format!("{gateway}/_gatehouse/readyz"))
        .send()
        .await
    {
        Ok(response) => response.status() == StatusCode::OK,
        Err(_) => false,
    }
}

// ------------------------------------------------------------------------------------- run --

struct Run {
    args: RunArgs,
    http: reqwest::Client,
    probe_auth: String,
    probe_client: Credentials,
    gateways: Vec<Arc<Gateway>>,
    probe: Mutex<ProbeStats>,
    flood: Mutex<FloodStats>,
    /// Revocations the flood completed with a 2xx.
    flood_ok: AtomicU64,
    started: Instant,
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} must be a non-negative number"))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.gateways.is_empty() && args.late_gateways.is_empty() {
        bail!("name at least one --gateway or --late-gateway");
    }
    if args.flood_rate < 0.0 || !args.flood_rate.is_finite() {
        bail!("--flood-rate must be a non-negative number");
    }
    if args.flood_rate > 0.0 && args.flood_clients == 0 {
        bail!("a flood needs --flood-clients of at least 1");
    }
    if args.max_inflight_probes == 0 || args.flood_max_inflight == 0 {
        bail!("in-flight limits must be at least 1");
    }
    if args.probe_interval_ms == 0 {
        bail!("--probe-interval-ms must be at least 1");
    }
    let duration = secs(args.duration_secs, "--duration-secs")?;
    let warmup = secs(args.flood_warmup_secs, "--flood-warmup-secs")?;
    let probe_timeout = secs(args.probe_timeout_secs, "--probe-timeout-secs")?;
    let request_timeout = secs(args.request_timeout_secs, "--request-timeout-secs")?;
    let ready_timeout = secs(args.ready_timeout_secs, "--ready-timeout-secs")?;
    let auth: Vec<String> = args
        .auth
        .iter()
        .map(|a| a.trim_end_matches('/').to_owned())
        .collect();
    let probe_auth = args
        .probe_auth
        .as_deref()
        .map(|a| a.trim_end_matches('/').to_owned())
        .or_else(|| auth.first().cloned())
        .context("name at least one --auth")?;

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        .pool_max_idle_per_host(512)
        .build()
        .context("cannot build the HTTP client")?;
    let started = Instant::now();

    // Clients: one for the probe, one for the watchers, one per flooding client.
    let probe_client = register(&http, &probe_auth, "revocation-bench probe", &args.scope).await?;
    let watch_client = register(&http, &probe_auth, "revocation-bench watch", &args.scope).await?;
    let flooding = args.flood_rate > 0.0;
    let mut flood_clients = Vec::new();
    if flooding {
        for i in 0..args.flood_clients {
            flood_clients.push(
                register(
                    &http,
                    &probe_auth,
                    &format!("revocation-bench flood {i}"),
                    &args.scope,
                )
                .await?,
            );
        }
    }

    let mut gateways = Vec::new();
    for (spec, late) in args
        .gateways
        .iter()
        .map(|g| (g, false))
        .chain(args.late_gateways.iter().map(|g| (g, true)))
    {
        gateways.push(Arc::new(Gateway {
            name: spec.name.clone(),
            url: spec.url.clone(),
            late,
            ready: AtomicBool::new(false),
            ready_after: Mutex::new(None),
            stats: Mutex::new(GatewayStats::default()),
        }));
    }
    for g in gateways.iter().filter(|g| !g.late) {
        let deadline = Instant::now() + ready_timeout;
        while !is_ready(&http, &g.url).await {
            if Instant::now() >= deadline {
                bail!(
                    "gateway {} ({}) not ready within {:?}",
                    g.name,
                    g.url,
                    ready_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        g.ready.store(true, Ordering::Relaxed);
        *lock(&g.ready_after) = Some(started.elapsed());
    }
    // Every gateway must accept a valid token before anything is measured.
    let check = token(&http, &probe_auth, &probe_client, &args.scope)
        .await
        .map_err(|e| anyhow::anyhow!("the probe client cannot get a token: {e}"))?;
    for g in gateways.iter().filter(|g| !g.late) {
        let url = format!("{}{}", g.url, args.path);
        match call_gateway(&http, &url, &check).await {
            Ok(StatusCode::OK) => {}
            Ok(status) => bail!(
                "gateway {}: GET {url} with a valid token answered {status}",
                g.name
            ),
            Err(e) => bail!("gateway {}: GET {url}: {e}", g.name),
        }
    }

    let state = Arc::new(Run {
        args: args.clone(),
        http: http.clone(),
        probe_auth: probe_auth.clone(),
        probe_client,
        gateways,
        probe: Mutex::new(ProbeStats::default()),
        flood: Mutex::new(FloodStats::default()),
        flood_ok: AtomicU64::new(0),
        started,
    });

    // Late gateways: ready when their readyz first answers 200.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    for g in state.gateways.iter().filter(|g| g.late).cloned() {
        let state = state.clone();
        let mut stop = stop_rx.clone();
        background.spawn(async move {
            loop {
                if is_ready(&state.http, &g.url).await {
                    *lock(&g.ready_after) = Some(state.started.elapsed());
                    g.ready.store(true, Ordering::Relaxed);
                    eprintln!(
                        "[revocation-bench] gateway {} ready after {:.2} s",
                        g.name,
                        state.started.elapsed().as_secs_f64()
                    );
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }

    // The flood; the measurement starts after its warm-up.
    let mut flood_tasks = JoinSet::new();
    let flood_started = Instant::now();
    let measure_start = flood_started + if flooding { warmup } else { Duration::ZERO };
    let deadline = measure_start + duration;
    if flooding {
        let per_client = args.flood_rate / args.flood_clients as f64;
        let period = Duration::from_secs_f64(1.0 / per_client);
        for (i, client) in flood_clients.into_iter().enumerate() {
            let state = state.clone();
            let auth = auth.clone();
            let stop = stop_rx.clone();
            flood_tasks.spawn(flood_client(state, i, client, auth, period, stop));
        }
    }

    // Watchers, from the flood's start, with their token renewed in the background.
    let watch_token = Arc::new(RwLock::new(
        token(&http, &probe_auth, &watch_client, &args.scope)
            .await
            .map_err(|e| anyhow::anyhow!("the watch client cannot get a token: {e}"))?,
    ));
    let mut measuring = JoinSet::new();
    if args.watch_rate > 0.0 {
        let renew =
            secs(args.watch_renew_secs, "--watch-renew-secs")?.max(Duration::from_millis(100));
        {
            let state = state.clone();
            let watch_token = watch_token.clone();
            measuring.spawn(async move {
                while Instant::now() + renew < deadline {
                    tokio::time::sleep(renew).await;
                    match token(
                        &state.http,
                        &state.probe_auth,
                        &watch_client,
                        &state.args.scope,
                    )
                    .await
                    {
                        Ok(t) => {
                            if let Ok(mut current) = watch_token.write() {
                                *current = t;
                            }
                        }
                        Err(e) => lock(&state.probe).watch_token_errors.add(e),
                    }
                }
            });
        }
        for g in state.gateways.iter().cloned() {
            measuring.spawn(watch_gateway(
                state.clone(),
                g,
                watch_token.clone(),
                deadline,
            ));
        }
    }
    tokio::time::sleep_until(measure_start).await;
    let flood_ok_at_start = state.flood_ok.load(Ordering::Relaxed);

    // Progress lines.
    if args.progress_secs > 0.0 {
        let state = state.clone();
        let every = secs(args.progress_secs, "--progress-secs")?;
        let mut stop = stop_rx.clone();
        background.spawn(async move {
            let mut last = (Instant::now(), state.flood_ok.load(Ordering::Relaxed));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                let now = Instant::now();
                let ok = state.flood_ok.load(Ordering::Relaxed);
                let rate = (ok - last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, ok);
                let mut line = format!(
                    "[revocation-bench] t={:.0}s flood {:.0}/s",
                    state.started.elapsed().as_secs_f64(),
                    rate
                );
                for g in &state.gateways {
                    let s = lock(&g.stats);
                    let mut sorted = s.latencies_ms.clone();
                    sorted.sort_by(f64::total_cmp);
                    line.push_str(&format!(
                        "; {}: {} enforced (p50 {}), {} timeouts, {} valid non-200",
                        g.name,
                        sorted.len(),
                        fmt_ms(percentile(&sorted, 50.0)),
                        s.timeouts,
                        s.valid_non200.total()
                    ));
                }
                eprintln!("{line}");
            }
        });
    }

    // Probes on a fixed schedule, a bounded number at once.
    let probe_slots = Arc::new(Semaphore::new(args.max_inflight_probes));
    let mut probes = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(args.probe_interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        if !tick_before(&mut ticker, deadline).await {
            break;
        }
        let Ok(permit) = probe_slots.clone().try_acquire_owned() else {
            lock(&state.probe).skipped += 1;
            continue;
        };
        let ready: Vec<Arc<Gateway>> = state
            .gateways
            .iter()
            .filter(|g| g.is_ready())
            .cloned()
            .collect();
        if ready.is_empty() {
            continue;
        }
        lock(&state.probe).started += 1;
        let state = state.clone();
        probes.spawn(async move {
            probe(&state, &ready, probe_timeout).await;
            drop(permit);
        });
    }
    let measured = measure_start.elapsed();
    let flood_ok_at_end = state.flood_ok.load(Ordering::Relaxed);
    // Probes still polling finish (each is bounded by the probe timeout); the flood goes on
    // meanwhile so that they finish under the same load.
    while probes.join_next().await.is_some() {}
    while measuring.join_next().await.is_some() {}
    let _ = stop_tx.send(true);
    while flood_tasks.join_next().await.is_some() {}
    let flood_time = flood_started.elapsed();
    background.abort_all();
    while background.join_next().await.is_some() {}

    report(
        &state,
        measured,
        flood_time,
        (flood_ok_at_end - flood_ok_at_start) as f64 / measured.as_secs_f64(),
    );
    Ok(())
}

/// One flooding client: a token + revoke pair every `period`, at most `flood_max_inflight` at
/// once, round-robin over the auth nodes, until told to stop.
async fn flood_client(
    state: Arc<Run>,
    index: usize,
    client: Credentials,
    auth: Vec<String>,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let client = Arc::new(client);
    let slots = Arc::new(Semaphore::new(state.args.flood_max_inflight));
    let mut ticker = tokio::time::interval(period);
    // Behind schedule (a busy machine): catch up, so the average rate holds where it can.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut n = index;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            lock(&state.flood).skipped += 1;
            continue;
        };
        let node = auth[n % auth.len()].clone();
        n += 1;
        let state = state.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let outcome = match token(&state.http, &node, &client, &state.args.scope).await {
                Ok(t) => revoke(&state.http, &node, &client, &t).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    state.flood_ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => lock(&state.flood).errors.add(e),
            }
            drop(permit);
        });
    }
    // Let the pairs in flight finish (each request is time-limited).
    let all = u32::try_from(state.args.flood_max_inflight).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Valid-token requests to one gateway at the watch rate, from when it is ready to `deadline`.
async fn watch_gateway(
    state: Arc<Run>,
    gateway: Arc<Gateway>,
    watch_token: Arc<RwLock<String>>,
    deadline: Instant,
) {
    while !gateway.is_ready() {
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    const MAX_INFLIGHT: u32 = 16;
    let slots = Arc::new(Semaphore::new(MAX_INFLIGHT as usize));
    let url = format!("{}{}", gateway.url, state.args.path);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / state.args.watch_rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        if !tick_before(&mut ticker, deadline).await {
            break;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // A gateway that cannot answer 16 requests in time: say so among the answers.
            let mut s = lock(&gateway.stats);
            s.valid_requests += 1;
            s.valid_non200.add("not sent: 16 in flight");
            continue;
        };
        let token = match watch_token.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let state = state.clone();
        let gateway = gateway.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let answer = call_gateway(&state.http, &url, &token).await;
            let mut s = lock(&gateway.stats);
            s.valid_requests += 1;
            match answer {
                Ok(StatusCode::OK) => {}
                Ok(status) => s.valid_non200.add(status.as_u16().to_string()),
                Err(e) => s.valid_non200.add(e),
            }
            drop(permit);
        });
    }
    let _ = slots.acquire_many(MAX_INFLIGHT).await;
}

/// One probe: a fresh token is accepted by every gateway, is revoked at node A, and each gateway
/// is polled until it refuses it.
async fn probe(state: &Run, gateways: &[Arc<Gateway>], timeout: Duration) {
    let args = &state.args;
    let token = match token(
        &state.http,
        &state.probe_auth,
        &state.probe_client,
        &args.scope,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            lock(&state.probe).token_errors.add(e);
            return;
        }
    };
    let mut accepted = Vec::new();
    let mut checks = JoinSet::new();
    for (i, g) in gateways.iter().enumerate() {
        let http = state.http.clone();
        let url = format!("{}{}", g.url, args.path);
        let token = token.clone();
        checks.spawn(async move { (i, call_gateway(&http, &url, &token).await) });
    }
    while let Some(Ok((i, answer))) = checks.join_next().await {
        let g = &gateways[i];
        let mut s = lock(&g.stats);
        s.valid_requests += 1;
        match answer {
            Ok(StatusCode::OK) => accepted.push(g.clone()),
            Ok(status) => s.valid_non200.add(status.as_u16().to_string()),
            Err(e) => s.valid_non200.add(e),
        }
    }
    let before = Instant::now();
    if let Err(e) = revoke(&state.http, &state.probe_auth, &state.probe_client, &token).await {
        lock(&state.probe).revoke_errors.add(e);
        return;
    }
    let revoked = Instant::now();
    lock(&state.probe)
        .revoke_ms
        .push((revoked - before).as_secs_f64() * 1000.0);
    let poll = Duration::from_millis(args.poll_interval_ms);
    let mut polls = JoinSet::new();
    for g in accepted {
        let http = state.http.clone();
        let url = format!("{}{}", g.url, args.path);
        let token = token.clone();
        polls.spawn(async move {
            lock(&g.stats).probes += 1;
            loop {
                let answer = call_gateway(&http, &url, &token).await;
                let now = Instant::now();
                match answer {
                    Ok(StatusCode::UNAUTHORIZED) => {
                        lock(&g.stats)
                            .latencies_ms
                            .push((now - revoked).as_secs_f64() * 1000.0);
                        return;
                    }
                    Ok(StatusCode::OK) => {}
                    Ok(status) => lock(&g.stats).poll_other.add(status.as_u16().to_string()),
                    Err(e) => lock(&g.stats).poll_other.add(e),
                }
                if now - revoked >= timeout {
                    lock(&g.stats).timeouts += 1;
                    return;
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    while polls.join_next().await.is_some() {}
}

// --------------------------------------------------------------------------------- logins --

/// One password grant: its status as a tally key, and how long it took in ms.
async fn password_login(
    http: &reqwest::Client,
    args: &LoginArgs,
    username: &str,
    password: &str,
) -> (String, f64) {
    let started = Instant::now();
    let answer = http
        .post(format!("{}/oauth2/token", args.auth))
        .form(&[
            ("grant_type", "password"),
            ("client_id", args.client_id.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await;
    let key = match answer {
        Ok(response) => {
            let status = response.status().as_u16().to_string();
            // Read to the end, so the connection is reused.
            let _ = response.bytes().await;
            status
        }
        Err(e) => transport_kind(&e).to_owned(),
    };
    (key, started.elapsed().as_secs_f64() * 1000.0)
}

async fn logins(args: LoginArgs) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let client_from = |ip| {
        reqwest::Client::builder()
            .local_address(ip)
            .timeout(Duration::from_secs_f64(args.request_timeout_secs))
            .build()
            .context("cannot build an HTTP client")
    };
    let visitor = client_from(args.visitor_ip)?;
    let attacker = client_from(args.flood_ip)?;
    let (status, _) = password_login(&visitor, &args, &args.username, &args.password).await;
    if status != "200" {
        bail!("the legitimate login answered {status} before the flood");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flood_tally = Arc::new(Mutex::new(Tally::default()));
    let mut flood = JoinSet::new();
    for worker in 0..args.flood_concurrency {
        let (attacker, args, stop, tally) = (
            attacker.clone(),
            args.clone(),
            stop.clone(),
            flood_tally.clone(),
        );
        flood.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("flood-{worker}-{n}");
                let (key, _) = password_login(&attacker, &args, &name, "wrong-guess").await;
                lock(&tally).add(key);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    let flood_before = lock(&flood_tally).total();

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let legit_tally = Arc::new(Mutex::new(Tally::default()));
    let mut legit = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (visitor, args, latencies, tally) = (
            visitor.clone(),
            args.clone(),
            latencies.clone(),
            legit_tally.clone(),
        );
        legit.spawn(async move {
            while Instant::now() < deadline {
                let (key, ms) =
                    password_login(&visitor, &args, &args.username, &args.password).await;
                lock(&latencies).push(ms);
                lock(&tally).add(key);
            }
        });
    }
    while legit.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let flood_during = lock(&flood_tally).total() - flood_before;
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}

    let mut sorted = lock(&latencies).clone();
    sorted.sort_by(f64::total_cmp);
    let legit = lock(&legit_tally);
    let ok = legit.get("200");
    let rate = ok as f64 / elapsed;
    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
    let flood = lock(&flood_tally);
    println!(
        "legitimate logins from {} at concurrency {}: {} in {elapsed:.1} s, {rate:.1}/s answered 200, p50 {}, p99 {}; answers: {}",
        args.visitor_ip,
        args.concurrency,
        legit.total(),
        fmt_ms(p50),
        fmt_ms(p99),
        legit.human()
    );
    println!(
        "flood from {} at concurrency {}: {flood_during} requests during the measurement; answers over the whole run: {}",
        args.flood_ip,
        args.flood_concurrency,
        flood.human()
    );
    println!(
        "{}",
        json!({
            "label": args.label,
            "flood_concurrency": args.flood_concurrency,
            "concurrency": args.concurrency,
            "seconds": elapsed,
            "legit": {
                "requests": legit.total(),
                "ok": ok,
                "per_second": rate,
                "p50_ms": json_ms(p50),
                "p99_ms": json_ms(p99),
                "answers": legit.json(),
            },
            "flood": {
                "requests_during": flood_during,
                "per_second_during": flood_during as f64 / elapsed,
                "answers": flood.json(),
            },
        })
    );
    Ok(())
}

// ---------------------------------------------------------------------------------- report --

/// Nearest-rank percentile of sorted values; infinity stands for a timeout.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v.is_infinite() => "timeout".into(),
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// A percentile for the JSON line: milliseconds, or null when there is none or it is a timeout
/// (`timeouts` then says how many).
fn json_ms(v: Option<f64>) -> Value {
    match v {
        Some(v) if v.is_finite() => json!((v * 1000.0).round() / 1000.0),
        _ => Value::Null,
    }
}

fn report(state: &Run, measured: Duration, flood_time: Duration, flood_rate: f64) {
    let args = &state.args;
    let timeout_ms = args.probe_timeout_secs * 1000.0;
    println!(
        "== {}: {:.1} s measured, probes every {} ms (poll {} ms, timeout {:.0} s), watchers {}/s per gateway",
        args.label,
        measured.as_secs_f64(),
        args.probe_interval_ms,
        args.poll_interval_ms,
        args.probe_timeout_secs,
        args.watch_rate
    );
    let flood = lock(&state.flood);
    let flood_json = if args.flood_rate > 0.0 {
        println!(
            "flood: target {:.0} revocations/s from {} clients over {} auth node(s); achieved {:.0}/s while measuring ({} in {:.1} s in all); failures: {}; skipped (all {} slots busy): {}",
            args.flood_rate,
            args.flood_clients,
            args.auth.len(),
            flood_rate,
            state.flood_ok.load(Ordering::Relaxed),
            flood_time.as_secs_f64(),
            flood.errors.human(),
            args.flood_max_inflight,
            flood.skipped
        );
        json!({
            "target_rate": args.flood_rate,
            "clients": args.flood_clients,
            "auth_nodes": args.auth.len(),
            "achieved_rate": (flood_rate * 10.0).round() / 10.0,
            "revocations": state.flood_ok.load(Ordering::Relaxed),
            "seconds": (flood_time.as_secs_f64() * 100.0).round() / 100.0,
            "errors": flood.errors.json(),
            "skipped": flood.skipped,
        })
    } else {
        println!("flood: none (idle)");
        Value::Null
    };
    let probe = lock(&state.probe);
    let mut revoke_sorted = probe.revoke_ms.clone();
    revoke_sorted.sort_by(f64::total_cmp);
    println!(
        "probe: {} started, {} skipped (all {} slots busy); token failures: {}; revoke failures: {}; revoke call p50 {}, p99 {}; watchers' token failures: {}",
        probe.started,
        probe.skipped,
        args.max_inflight_probes,
        probe.token_errors.human(),
        probe.revoke_errors.human(),
        fmt_ms(percentile(&revoke_sorted, 50.0)),
        fmt_ms(percentile(&revoke_sorted, 99.0)),
        probe.watch_token_errors.human(),
    );
    let mut gateways_json = Vec::new();
    let mut all_enforced_in_budget = true;
    let mut total_503 = 0;
    for g in &state.gateways {
        let s = lock(&g.stats);
        let mut sorted = s.latencies_ms.clone();
        sorted.extend(std::iter::repeat_n(f64::INFINITY, s.timeouts as usize));
        sorted.sort_by(f64::total_cmp);
        let (p50, p99, max) = (
            percentile(&sorted, 50.0),
            percentile(&sorted, 99.0),
            sorted.last().copied(),
        );
        let ready_after = *lock(&g.ready_after);
        let within_budget = p99.is_some_and(|p| p <= 1000.0);
        all_enforced_in_budget &= within_budget;
        let n503 = s.valid_non200.get("503");
        total_503 += n503;
        println!(
            "gateway {}{}: {} probes, {} enforced, {} timeouts (> {:.0} s); propagation p50 {}, p99 {}, max {}{}",
            g.name,
            match (g.late, ready_after) {
                (true, Some(d)) =>
                    format!(" (late, ready {:.2} s after the start)", d.as_secs_f64()),
                (true, None) => " (late, never ready)".into(),
                (false, _) => String::new(),
            },
            s.probes,
            s.latencies_ms.len(),
            s.timeouts,
            timeout_ms / 1000.0,
            fmt_ms(p50),
            fmt_ms(p99),
            fmt_ms(max),
            if within_budget {
                ""
            } else {
                "  [over the 1 s budget]"
            },
        );
        println!(
            "gateway {}: {} requests with a valid token, not 200: {} (503: {}); polling a revoked token, neither 200 nor 401: {}",
            g.name,
            s.valid_requests,
            s.valid_non200.human(),
            n503,
            s.poll_other.human(),
        );
        gateways_json.push(json!({
            "name": g.name,
            "url": g.url,
            "late": g.late,
            "ready_after_s": ready_after.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            "probes": s.probes,
            "enforced": s.latencies_ms.len(),
            "timeouts": s.timeouts,
            "p50_ms": json_ms(p50),
            "p99_ms": json_ms(p99),
            "max_ms": json_ms(max),
            "p99_within_1s": within_budget,
            "valid_requests": s.valid_requests,
            "valid_non200": s.valid_non200.json(),
            "valid_503": n503,
            "poll_other": s.poll_other.json(),
        }));
    }
    let summary = json!({
        "label": args.label,
        "measured_s": (measured.as_secs_f64() * 100.0).round() / 100.0,
        "probe_interval_ms": args.probe_interval_ms,
        "poll_interval_ms": args.poll_interval_ms,
        "probe_timeout_s": args.probe_timeout_secs,
        "watch_rate": args.watch_rate,
        "flood": flood_json,
        "probe": {
            "started": probe.started,
            "skipped": probe.skipped,
            "token_errors": probe.token_errors.json(),
            "revoke_errors": probe.revoke_errors.json(),
            "revoke_p50_ms": json_ms(percentile(&revoke_sorted, 50.0)),
            "revoke_p99_ms": json_ms(percentile(&revoke_sorted, 99.0)),
            "watch_token_errors": probe.watch_token_errors.json(),
        },
        "gateways": gateways_json,
        "p99_within_1s": all_enforced_in_budget,
        "valid_503": total_503,
    });
    println!("{summary}");
}

/// Waits for the next tick; `false` once `deadline` has come instead.
async fn tick_before(ticker: &mut tokio::time::Interval, deadline: Instant) -> bool {
    tokio::select! {
        _ = ticker.tick() => Instant::now() < deadline,
        _ = tokio::time::sleep_until(deadline) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_timeouts_sort_last() {
        let mut v = vec![3.0, 1.0, f64::INFINITY, 2.0];
        v.sort_by(f64::total_cmp);
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        assert_eq!(percentile(&v, 75.0), Some(3.0));
        assert_eq!(percentile(&v, 99.0), Some(f64::INFINITY));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(json_ms(Some(f64::INFINITY)), Value::Null);
        assert_eq!(fmt_ms(Some(f64::INFINITY)), "timeout");
        assert_eq!(fmt_ms(Some(1500.0)), "1.50 s");
    }

    #[test]
    fn gateway_specs_take_an_optional_name() {
        let g: GatewaySpec = "late=http://127.0.0.1:1/".parse().unwrap();
        assert_eq!(
            (g.name.as_str(), g.url.as_str()),
            ("late", "http://127.0.0.1:1")
        );
        let g: GatewaySpec = "http://127.0.0.1:2".parse().unwrap();
        assert_eq!(g.name, "http://127.0.0.1:2");
        assert!("gw=localhost:3".parse::<GatewaySpec>().is_err());
    }
}
