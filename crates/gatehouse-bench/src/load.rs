//! Loads that a fixed-request generator (oha) cannot make, for `bench/scale.sh`:
//!
//! - `revocation-bench tokens`: `client_credentials` grants cycling over `--clients` seeded
//!   clients (`seed-client-NNNNNNN` with secret `seed-secret-NNNNNNN`), so that with many
//!   clients nearly every request misses the server's client cache; `--clients 1` is the
//!   single-client figure beside it;
//! - `revocation-bench signups`: `POST /users`, each with a new username;
//! - `revocation-bench refreshes`: `refresh_token` grants, each worker following its own chain
//!   of rotating refresh tokens (each used once), begun by one password grant.
//!
//! Each reports requests per second (200 or 201 answers), p50 and p99 over all answers, as
//! readable lines and then one JSON line (the last line of stdout).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Tally, fmt_ms, json_ms, percentile, transport_kind};
use crate::seed::{client_id, client_secret};

#[derive(Args, Clone)]
pub struct TokensArgs {
    /// The authorization server's base URL.
    #[arg(long)]
    auth: String,
    /// How many distinct seeded clients the requests cycle over.
    #[arg(long, default_value_t = 100_000)]
    clients: u64,
    /// The number of the first of them.
    #[arg(long, default_value_t = 1)]
    first_client: u64,
    /// The scope asked for.
    #[arg(long, default_value = "rates:read")]
    scope: String,
    /// Requests in flight (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long the measurement runs.
    #[arg(long, default_value_t = 20.0)]
    duration_secs: f64,
    /// Time limit of each request.
    #[arg(long, default_value_t = 30.0)]
    request_timeout_secs: f64,
    /// A name for this run, repeated in the JSON line.
    #[arg(long, default_value = "tokens")]
    label: String,
}

#[derive(Args, Clone)]
pub struct SignupArgs {
    /// The authorization server's base URL.
    #[arg(long)]
    auth: String,
    /// Sign-ups in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long the measurement runs.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Usernames are PREFIX-N; make it unique per run (the store keeps them).
    #[arg(long, default_value = "scale-signup")]
    prefix: String,
    /// Time limit of each request.
    #[arg(long, default_value_t = 30.0)]
    request_timeout_secs: f64,
    /// A name for this run, repeated in the JSON line.
    #[arg(long, default_value = "signups")]
    label: String,
}

#[derive(Args, Clone)]
pub struct RefreshArgs {
    /// The authorization server's base URL.
    #[arg(long)]
    auth: String,
    /// The person whose sessions are refreshed (one password grant per worker begins a chain).
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    /// The client the chains belong to (the built-in public client by default).
    #[arg(long, default_value = "gatehouse-web")]
    client_id: String,
    /// Chains refreshed at once (one keep-alive connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long the measurement runs.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Time limit of each request.
    #[arg(long, default_value_t = 30.0)]
    request_timeout_secs: f64,
    /// A name for this run, repeated in the JSON line.
    #[arg(long, default_value = "refreshes")]
    label: String,
    /// The server's process id, to report its CPU time per refresh over the measured window
    /// (after the chains' password grants), from /proc/PID/stat.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// A process's CPU time so far (user + system) in seconds, from /proc/PID/stat.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .context("short /proc stat line")?
            .parse::<f64>()
            .context("bad /proc stat field")
    };
    let clock_ticks = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    // utime and stime, in clock ticks: fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks)
}

/// What the workers saw: answers by status and each answer's latency in ms.
#[derive(Default)]
struct Seen {
    answers: Tally,
    latencies_ms: Vec<f64>,
}

fn http_client(concurrency: usize, timeout_secs: f64) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(timeout_secs))
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("cannot build an HTTP client")
}

/// Runs `concurrency` workers until `duration` has passed; each calls `request(n)` with a
/// number taken in turn from one counter and records the answer's status (or failure) and
/// latency. Returns what they saw and the seconds it took (to the last answer).
async fn drive<F, Fut>(
    concurrency: usize,
    duration: Duration,
    request: F,
) -> anyhow::Result<(Seen, f64)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>> + Send + 'static,
{
    ensure!(concurrency > 0, "--concurrency must be positive");
    let request = Arc::new(request);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (request, counter) = (request.clone(), counter.clone());
        workers.spawn(async move {
            let mut seen = Seen::default();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let key = match request(n).await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        // Read to the end, so the connection is reused.
                        let _ = response.bytes().await;
                        status
                    }
                    Err(e) => transport_kind(&e).to_owned(),
                };
                seen.latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
                seen.answers.add(key);
            }
            seen
        });
    }
    gather(workers, started).await
}

/// What every worker saw, together, and the seconds since `started` (to the last answer).
async fn gather(mut workers: JoinSet<Seen>, started: Instant) -> anyhow::Result<(Seen, f64)> {
    let mut all = Seen::default();
    while let Some(done) = workers.join_next().await {
        let seen = done.context("a load worker failed")?;
        for (k, v) in seen.answers.0 {
            *all.answers.0.entry(k).or_default() += v;
        }
        all.latencies_ms.extend(seen.latencies_ms);
    }
    let seconds = started.elapsed().as_secs_f64();
    all.latencies_ms.sort_by(f64::total_cmp);
    Ok((all, seconds))
}

/// Prints the readable line and the JSON line of a run whose good answers are `ok_status`.
fn report(label: &str, what: &str, ok_status: &str, seen: &Seen, seconds: f64, extra: Value) {
    let ok = seen.answers.get(ok_status);
    let rate = ok as f64 / seconds;
    let sorted = &seen.latencies_ms;
    let (p50, p99, max) = (
        percentile(sorted, 50.0),
        percentile(sorted, 99.0),
        sorted.last().copied(),
    );
    println!(
        "{label}: {what}: {} requests in {seconds:.1} s, {rate:.1}/s answered {ok_status}; p50 {}, p99 {}, max {}; answers: {}",
        seen.answers.total(),
        fmt_ms(p50),
        fmt_ms(p99),
        fmt_ms(max),
        seen.answers.human()
    );
    let mut line = json!({
        "label": label,
        "seconds": (seconds * 100.0).round() / 100.0,
        "requests": seen.answers.total(),
        "ok": ok,
        "per_second": (rate * 10.0).round() / 10.0,
        "p50_ms": json_ms(p50),
        "p99_ms": json_ms(p99),
        "max_ms": json_ms(max),
        "answers": seen.answers.json(),
    });
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}

pub async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    ensure!(args.clients > 0, "--clients must be positive");
    let http = http_client(args.concurrency, args.request_timeout_secs)?;
    let url = format!("{}/oauth2/token", args.auth.trim_end_matches('/'));
    // Check the first and the last client before the clock starts: a seeding mistake shows here.
    for n in [args.first_client, args.first_client + args.clients - 1] {
        let n = n as i64;
        let response = http
            .post(&url)
            .basic_auth(client_id(n), Some(client_secret(n)))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", args.scope.as_str()),
            ])
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        ensure!(
            status == reqwest::StatusCode::OK && body.contains("access_token"),
            "client {} got {status} instead of a token: {}",
            client_id(n),
            body.chars().take(300).collect::<String>()
        );
    }
    let (clients, first) = (args.clients, args.first_client);
    let scope = args.scope.clone();
    let (seen, seconds) = drive(
        args.concurrency,
        Duration::from_secs_f64(args.duration_secs),
        move |n| {
            let n = (first + n % clients) as i64;
            http.post(&url)
                .basic_auth(client_id(n), Some(client_secret(n)))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", scope.as_str()),
                ])
                .send()
        },
    )
    .await?;
    // Each client's first request is a miss; later ones hit while the cache holds it.
    let requests = seen.answers.total();
    report(
        &args.label,
        &format!(
            "client_credentials over {} client(s) at concurrency {}",
            args.clients, args.concurrency
        ),
        "200",
        &seen,
        seconds,
        json!({
            "clients": args.clients,
            "concurrency": args.concurrency,
            "distinct_clients_used": requests.min(args.clients),
        }),
    );
    Ok(())
}

pub async fn signups(args: SignupArgs) -> anyhow::Result<()> {
    let http = http_client(args.concurrency, args.request_timeout_secs)?;
    let url = format!("{}/users", args.auth.trim_end_matches('/'));
    let prefix = args.prefix.clone();
    let (seen, seconds) = drive(
        args.concurrency,
        Duration::from_secs_f64(args.duration_secs),
        move |n| {
            let username = format!("{prefix}-{n}");
            http.post(&url)
                .json(&json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": "scale-signup-password-1",
                }))
                .send()
        },
    )
    .await?;
    report(
        &args.label,
        &format!("POST /users at concurrency {}", args.concurrency),
        "201",
        &seen,
        seconds,
        json!({"concurrency": args.concurrency}),
    );
    Ok(())
}

/// The refresh token of a token endpoint answer.
async fn refresh_token_of(response: reqwest::Response) -> anyhow::Result<String> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the token answer is not JSON")?;
    body["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no refresh_token in the {status} answer: {body}"))
}

pub async fn refreshes(args: RefreshArgs) -> anyhow::Result<()> {
    ensure!(args.concurrency > 0, "--concurrency must be positive");
    let http = http_client(args.concurrency, args.request_timeout_secs)?;
    let url = format!("{}/oauth2/token", args.auth.trim_end_matches('/'));
    // Each chain begins with a password grant, before the clock starts.
    let mut chains = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let response = http
            .post(&url)
            .form(&[
                ("grant_type", "password"),
                ("username", args.username.as_str()),
                ("password", args.password.as_str()),
                ("client_id", args.client_id.as_str()),
            ])
            .send()
            .await
            .with_context(|| format!("POST {url} (password grant)"))?;
        chains.push(refresh_token_of(response).await?);
    }
    let cpu_before = args.server_pid.map(cpu_seconds).transpose()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let mut workers = JoinSet::new();
    for mut refresh_token in chains {
        let (http, url, client_id) = (http.clone(), url.clone(), args.client_id.clone());
        workers.spawn(async move {
            let mut seen = Seen::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = http
                    .post(&url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh_token.as_str()),
                        ("client_id", client_id.as_str()),
                    ])
                    .send()
                    .await;
                let key = match answer {
                    Ok(response) if response.status() == reqwest::StatusCode::OK => {
                        match refresh_token_of(response).await {
                            Ok(next) => {
                                refresh_token = next;
                                "200".to_owned()
                            }
                            Err(_) => "200 without a refresh token".to_owned(),
                        }
                    }
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(e) => transport_kind(&e).to_owned(),
                };
                seen.latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
                let broken = key != "200";
                seen.answers.add(key);
                // A chain that broke cannot go on: its token is spent or unknown.
                if broken {
                    break;
                }
            }
            seen
        });
    }
    let (all, seconds) = gather(workers, started).await?;
    let server_cpu_us = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) if all.answers.total() > 0 => {
            Some((cpu_seconds(pid)? - before) * 1e6 / all.answers.total() as f64)
        }
        _ => None,
    };
    report(
        &args.label,
        &format!("refresh_token chains at concurrency {}", args.concurrency),
        "200",
        &all,
        seconds,
        json!({"concurrency": args.concurrency, "server_cpu_us_per_request": server_cpu_us}),
    );
    Ok(())
}
