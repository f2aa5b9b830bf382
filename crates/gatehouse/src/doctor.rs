//! `gatehouse doctor`: checks a node's configuration without serving, for operators before a
//! start or an upgrade, and for deployment scripts. It reads the same settings as `serve` and
//! `auth` (flags, `GATEHOUSE_*`, the TOML file) and says, one line per check, `ok`, `warn` or
//! `FAIL` with the reason and what to do:
//!
//! - **store**: the database is there and answers (a missing SQLite file is not created);
//! - **migrations**: every migration this build knows is applied and none it does not know (a
//!   newer Gatehouse's) is; nothing is applied, the database is only read;
//! - **signing keys**: the key-encryption key opens every stored signing key that is not
//!   retired, and each parses as the node would load it (a known `alg`, a PKCS #8 key of that
//!   kind); no secret is printed, only key ids;
//! - **issuer**: the configured issuer is a URL clients can use, as discovery will publish it;
//! - **clock**: this host's clock agrees with PostgreSQL's, or for SQLite is not behind the
//!   newest time a node recorded;
//! - **gateway routes**: a gateway file (`--gateway-config`) or `serve`'s own route file parses
//!   with the gateway's own code;
//! - **tls**, **gateway tls**: the certificate and key files of `[tls]` (and of the gateway
//!   file's `[gateway.tls]`) load as the listener loads them, and a `ca_file` holds certificates.
//!
//! The store is opened read-only (SQLite with `mode=ro`): doctor never changes it.
//!
//! `gatehouse healthcheck` is the probe for container health checks: one GET, exit status 0 on a
//! 2xx answer, so images need no curl. `--ca-file` trusts a private CA besides the system's
//! roots, for a listener serving TLS.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use gatehouse_core::Store;
use gatehouse_gateway::GatewayFile;
use gatehouse_store::{MigrationStatus, SqlStore};
use gatehouse_token::{KeyEncryptionKey, SigningAlgorithm, SigningKey};

use crate::config::{Settings, secret_from_env};

/// How far this host's clock may be from the database's before tokens go wrong (they carry
/// `iat` and `exp` from one node's clock and are checked against another's).
const CLOCK_FAIL_SECS: i64 = 60;
/// A difference worth telling, though tokens' leeway absorbs it.
const CLOCK_WARN_SECS: i64 = 5;
/// Before this (2020-01-01) a clock is simply not set.
const CLOCK_FLOOR: i64 = 1_577_836_800;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
    /// Not run: what it needs failed already.
    Skip,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub message: String,
}

/// Every check, in the order they ran.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: &'static str, level: Level, message: impl Into<String>) {
        self.checks.push(Check {
            name,
            level,
            message: one_line(&message.into()),
        });
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.count(Level::Fail) > 0
    }

    /// The report as printed: a line per check and a summary.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            text.push_str(&format!(
                "{:<5} {}: {}\n",
                check.level.label(),
                check.name,
                check.message
            ));
        }
        text.push_str(&format!(
            "{} ok, {} warnings, {} failed, {} skipped\n",
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail),
            self.count(Level::Skip)
        ));
        text
    }
}

/// A message on one line: parsers' multi-line errors (TOML's, with a picture of the line at
/// fault) keep their words and lose the picture.
fn one_line(message: &str) -> String {
    let picture = |line: &str| {
        let line = line.trim();
        line.starts_with('|')
            || line
                .split_once(" |")
                .is_some_and(|(number, _)| number.chars().all(|c| c.is_ascii_digit()))
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !picture(line))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command: prints the report on stdout; an error (exit status 1) when a check failed.
pub async fn main(
    settings: anyhow::Result<Settings>,
    gateway_config: Option<&Path>,
) -> anyhow::Result<()> {
    let report = match settings {
        Ok(settings) => run(&settings, gateway_config).await,
        Err(e) => {
            let mut report = Report::default();
            report.add(
                "configuration",
                Level::Fail,
                format!("{e:#}; fix the file, flag or GATEHOUSE_* variable it names"),
            );
            if let Some(path) = gateway_config {
                check_gateway_file(&mut report, path, None);
                check_gateway_tls(&mut report, path);
            }
            report
        }
    };
    print!("{}", report.render());
    match report.failed() {
        true => anyhow::bail!("{} of the checks failed", report.count(Level::Fail)),
        false => Ok(()),
    }
}

/// Runs every check on `settings` (and the gateway file, when one is given).
pub async fn run(settings: &Settings, gateway_config: Option<&Path>) -> Report {
    let mut report = Report::default();
    report.add("configuration", Level::Ok, "settings read and valid");
    let store = check_store(&mut report, settings).await;
    let migrated = match &store {
        Some(store) => check_migrations(&mut report, store).await,
        None => {
            report.add("migrations", Level::Skip, "the store could not be opened");
            false
        }
    };
    match (&store, migrated) {
        (Some(store), true) => check_keys(&mut report, settings, store).await,
        _ => report.add(
            "signing keys",
            Level::Skip,
            "the store has no usable schema to read keys from",
        ),
    }
    check_issuer(&mut report, settings);
    check_clock(&mut report, store.as_ref(), migrated).await;
    match gateway_config {
        Some(path) => check_gateway_file(&mut report, path, Some(&settings.auth.issuer)),
        None => check_serve_routes(&mut report, settings),
    }
    if let Some(tls) = &settings.tls {
        check_tls(
            &mut report,
            "tls",
            tls.files(),
            tls.ca_file.as_deref(),
            "[tls]",
        );
    }
    if let Some(path) = gateway_config {
        check_gateway_tls(&mut report, path);
    }
    if let Some(store) = store {
        store.close().await;
    }
    report
}

/// Opens the configured store as it is: a missing SQLite database is reported, not created.
async fn check_store(report: &mut Report, settings: &Settings) -> Option<SqlStore> {
    let (url, shown) = match &settings.database_url {
        Some(url) => (
            url.clone(),
            format!("PostgreSQL at {}", postgres_place(url)),
        ),
        None => {
            let path = settings.data_dir.join(gatehouse_store::SQLITE_FILE);
            if !path.is_file() {
                report.add(
                    "store",
                    Level::Fail,
                    format!(
                        "no SQLite database at {}: start `gatehouse serve` (or `auth`) once to \
                         create it, or point --data-dir / GATEHOUSE_DATA_DIR at the directory \
                         that holds it",
                        path.display()
                    ),
                );
                return None;
            }
            (
                // Read-only: doctor never writes to the store it looks at.
                format!("sqlite://{}?mode=ro", path.display()),
                format!("SQLite at {}", path.display()),
            )
        }
    };
    let store = match SqlStore::connect_unmigrated(&url).await {
        Ok(store) => store,
        Err(e) => {
            report.add(
                "store",
                Level::Fail,
                format!(
                    "cannot open {shown}: {e}; check that the database runs, the URL and its \
                     credentials"
                ),
            );
            return None;
        }
    };
    match store.ping().await {
        Ok(()) => {
            report.add("store", Level::Ok, format!("{shown} answers"));
            Some(store)
        }
        Err(e) => {
            report.add(
                "store",
                Level::Fail,
                format!("{shown} does not answer: {e}; is it a database, and readable?"),
            );
            store.close().await;
            None
        }
    }
}

/// Where a PostgreSQL URL points, without its credentials.
fn postgres_place(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}{}{}",
            parsed.host_str().unwrap_or("(local socket)"),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
            parsed.path()
        ),
        Err(_) => "(the configured URL, which does not parse)".to_owned(),
    }
}

fn versions(list: &[i64]) -> String {
    list.iter()
        .map(|v| format!("{v:04}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the schema is there to read: true when it is current, or only behind.
async fn check_migrations(report: &mut Report, store: &SqlStore) -> bool {
    let status: MigrationStatus = match store.migration_status().await {
        Ok(status) => status,
        Err(e) => {
            report.add(
                "migrations",
                Level::Fail,
                format!("cannot read the migration history: {e}"),
            );
            return false;
        }
    };
    if !status.has_history {
        report.add(
            "migrations",
            Level::Fail,
            format!(
                "the database has no migration history: no Gatehouse node has started on it \
                 (or it is another program's). Start `gatehouse serve` or `auth` on it once, \
                 which applies the {} migrations",
                status.known
            ),
        );
        return false;
    }
    if !status.changed.is_empty() {
        report.add(
            "migrations",
            Level::Fail,
            format!(
                "migrations {} were applied with other contents than this build's: the database \
                 comes from a different migration history and cannot be upgraded; start on a new \
                 database",
                versions(&status.changed)
            ),
        );
        return false;
    }
    if !status.failed.is_empty() {
        report.add(
            "migrations",
            Level::Fail,
            format!(
                "migrations {} are recorded as failed part way: restore the database from a \
                 backup taken before them",
                versions(&status.failed)
            ),
        );
        return false;
    }
    if !status.unknown.is_empty() {
        report.add(
            "migrations",
            Level::Fail,
            format!(
                "migrations {} are applied but unknown to this build: a newer Gatehouse migrated \
                 this database; run that version (or newer), not this one",
                versions(&status.unknown)
            ),
        );
        return false;
    }
    if !status.pending.is_empty() {
        report.add(
            "migrations",
            Level::Warn,
            format!(
                "{} of {} migrations applied; {} not yet: the next node of this version to \
                 start applies them (take a backup first)",
                status.applied.len(),
                status.known,
                versions(&status.pending)
            ),
        );
        return true;
    }
    report.add(
        "migrations",
        Level::Ok,
        format!("all {} migrations applied, none unknown", status.known),
    );
    true
}

/// The key-encryption key as a node would find it, without generating one.
enum KekSource {
    Found(KeyEncryptionKey, String),
    Missing,
    Invalid(String),
}

fn find_kek(settings: &Settings) -> KekSource {
    match secret_from_env("GATEHOUSE_KEK") {
        Ok(Some(text)) => {
            return match KeyEncryptionKey::parse(&text) {
                Ok(kek) => KekSource::Found(kek, "GATEHOUSE_KEK".to_owned()),
                Err(e) => KekSource::Invalid(format!("GATEHOUSE_KEK: {e}")),
            };
        }
        Ok(None) => {}
        Err(e) => return KekSource::Invalid(format!("{e:#}")),
    }
    let path = settings.data_dir.join("kek.key");
    if !path.exists() {
        return KekSource::Missing;
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => match KeyEncryptionKey::parse(&text) {
            Ok(kek) => KekSource::Found(kek, path.display().to_string()),
            Err(e) => KekSource::Invalid(format!("{}: {e}", path.display())),
        },
        Err(e) => KekSource::Invalid(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whether a key file can be read by others than its owner.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

async fn check_keys(report: &mut Report, settings: &Settings, store: &SqlStore) {
    let keys = match store.signing_keys().await {
        Ok(keys) => keys,
        Err(e) => {
            report.add(
                "signing keys",
                Level::Fail,
                format!("cannot read the signing keys: {e}"),
            );
            return;
        }
    };
    let (kek, source) = match find_kek(settings) {
        KekSource::Found(kek, source) => (kek, source),
        KekSource::Invalid(reason) => {
            report.add(
                "signing keys",
                Level::Fail,
                format!("the key-encryption key is unusable: {reason}"),
            );
            return;
        }
        KekSource::Missing if keys.is_empty() => {
            report.add(
                "signing keys",
                Level::Warn,
                "no signing key and no key-encryption key yet: the first node to start makes \
                 both (on PostgreSQL, set the same GATEHOUSE_KEK on every node first)",
            );
            return;
        }
        KekSource::Missing => {
            report.add(
                "signing keys",
                Level::Fail,
                format!(
                    "the store holds {} signing keys but no key-encryption key was found \
                     (GATEHOUSE_KEK, GATEHOUSE_KEK_FILE or {}): give this node the key the \
                     others use",
                    keys.len(),
                    settings.data_dir.join("kek.key").display()
                ),
            );
            return;
        }
    };
    let key_file = settings.data_dir.join("kek.key");
    if source == key_file.display().to_string() && readable_by_others(&key_file) {
        report.add(
            "key file",
            Level::Warn,
            format!(
                "{} is readable by others than its owner: chmod 600 it",
                key_file.display()
            ),
        );
    }
    if keys.is_empty() {
        report.add(
            "signing keys",
            Level::Warn,
            format!(
                "no signing key yet: the first node to start makes one, sealed under the key \
                 from {source}"
            ),
        );
        return;
    }
    // Retired keys neither sign nor verify: the node leaves them aside, and so does this check.
    let now = unix_now();
    let (retired, live): (Vec<_>, Vec<_>) = keys
        .iter()
        .partition(|k| k.retired_at.is_some_and(|at| at <= now));
    let ignored = match retired.len() {
        0 => String::new(),
        n => format!("; {n} retired, ignored"),
    };
    if live.is_empty() {
        report.add(
            "signing keys",
            Level::Fail,
            format!(
                "all {} signing keys are retired: rotate (`gatehouse admin keys rotate`) so                  one signs",
                keys.len()
            ),
        );
        return;
    }
    let mut refused = Vec::new();
    let mut broken = Vec::new();
    for key in &live {
        let pkcs8 = match kek.open(&key.kid, &key.sealed_private_key) {
            Ok(pkcs8) => pkcs8,
            Err(_) => {
                refused.push(key.kid.as_str());
                continue;
            }
        };
        let loaded = key
            .alg
            .parse::<SigningAlgorithm>()
            .map_err(|e| e.to_string())
            .and_then(|alg| {
                SigningKey::from_pkcs8(&key.kid, alg, &pkcs8).map_err(|e| e.to_string())
            });
        if let Err(reason) = loaded {
            broken.push(format!("{} ({reason})", key.kid));
        }
    }
    if !refused.is_empty() {
        report.add(
            "signing keys",
            Level::Fail,
            format!(
                "the key-encryption key from {source} does not open {} of the {} signing keys \
                 in use ({}): it is not the key they were sealed with. Give this node the same \
                 GATEHOUSE_KEK as the node that made them{ignored}",
                refused.len(),
                live.len(),
                refused.join(", ")
            ),
        );
        return;
    }
    if !broken.is_empty() {
        report.add(
            "signing keys",
            Level::Fail,
            format!(
                "{} of the {} signing keys in use cannot be loaded: {}. A node leaves such a key \
                 out (and cannot start if none is left); rotate (`gatehouse admin keys rotate`) \
                 and retire the broken ones{ignored}",
                broken.len(),
                live.len(),
                broken.join("; ")
            ),
        );
        return;
    }
    report.add(
        "signing keys",
        Level::Ok,
        format!(
            "the key-encryption key from {source} opens every signing key in use and each \
             loads ({} stored, {} published{ignored})",
            keys.len(),
            live.len()
        ),
    );
}

/// TLS files as a listener loads them (`Tls::load`), and a CA file as the node's clients read
/// it.
fn check_tls(
    report: &mut Report,
    name: &'static str,
    files: gatehouse_listen::TlsFiles,
    ca_file: Option<&Path>,
    section: &str,
) {
    let cert = files.cert_file.display().to_string();
    if let Err(e) = gatehouse_listen::Tls::load(files) {
        report.add(
            name,
            Level::Fail,
            format!("{section}: {e}; the listener would refuse to start (and SIGHUP keeps the old certificate)"),
        );
        return;
    }
    if let Some(path) = ca_file
        && let Err(reason) = read_certificates(path)
    {
        report.add(
            name,
            Level::Fail,
            format!("{section} ca_file {}: {reason}", path.display()),
        );
        return;
    }
    report.add(
        name,
        Level::Ok,
        format!("{section}: the certificate {cert} and its key load"),
    );
}

/// The certificates of a PEM file, or why there are none.
fn read_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(found) if !found.is_empty() => Ok(found),
        Ok(_) => Err("no certificate in it".to_owned()),
        Err(e) => Err(format!("not PEM certificates: {e}")),
    }
}

/// The gateway file's `[gateway.tls]` and `ca_file`, when it reads and names them.
fn check_gateway_tls(report: &mut Report, path: &Path) {
    let Ok(file) = GatewayFile::read(path) else {
        return; // told by the routes check
    };
    let section = file.gateway;
    match section.tls {
        Some(files) => check_tls(
            report,
            "gateway tls",
            files,
            section.ca_file.as_deref(),
            "[gateway.tls]",
        ),
        None => {
            if let Some(ca) = &section.ca_file
                && let Err(reason) = read_certificates(ca)
            {
                report.add(
                    "gateway tls",
                    Level::Fail,
                    format!("[gateway] ca_file {}: {reason}", ca.display()),
                );
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The issuer's host as an address, when it is one.
fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse().ok())
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    match (host_ip(url), url.host_str()) {
        (Some(ip), _) => ip.is_loopback(),
        (None, Some(name)) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        (None, None) => false,
    }
}

fn check_issuer(report: &mut Report, settings: &Settings) {
    let issuer = &settings.auth.issuer;
    let url = match reqwest::Url::parse(issuer) {
        Ok(url) => url,
        Err(e) => {
            report.add(
                "issuer",
                Level::Fail,
                format!("{issuer:?} is not a URL ({e}): set --issuer / GATEHOUSE_ISSUER"),
            );
            return;
        }
    };
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    if !matches!(url.scheme(), "http" | "https") {
        failures.push("it must be an https URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        failures.push("an issuer has no query or fragment (RFC 8414 §2)".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        failures.push("an issuer carries no user name or password".to_owned());
    }
    let unspecified = host_ip(&url).is_some_and(|ip| ip.is_unspecified());
    if unspecified {
        failures.push(
            "its host is the unspecified address, which no client can reach: name the host \
             clients use (set --issuer when listening on 0.0.0.0)"
                .to_owned(),
        );
    }
    let loopback = is_loopback_host(&url);
    if url.scheme() == "http" && !loopback && !unspecified {
        warnings.push(
            "it is http on a host other than loopback: tokens, secrets and passwords cross the \
             network in the clear; serve it over https (here or at a proxy in front)"
                .to_owned(),
        );
    }
    if issuer.ends_with('/') {
        warnings.push(
            "it ends with '/': tokens carry it so, and every client and gateway must be \
             configured with exactly that string"
                .to_owned(),
        );
    }
    if !matches!(url.path(), "" | "/") {
        warnings.push(format!(
            "it has a path ({}): RFC 8414 clients look for {}{}{}, which a proxy in front must \
             send to this server's /.well-known/oauth-authorization-server",
            url.path(),
            url.origin().ascii_serialization(),
            "/.well-known/oauth-authorization-server",
            url.path().trim_end_matches('/')
        ));
    }
    if loopback && let Some(port) = url.port_or_known_default() {
        let listen: SocketAddr = settings.auth_listen;
        if listen.port() != 0 && listen.port() != port {
            warnings.push(format!(
                "it names loopback port {port} but the server listens on {listen}: right only \
                 behind a proxy on that port"
            ));
        } else if !listen.ip().is_loopback() {
            warnings.push(format!(
                "the server listens on {listen} but the issuer is a loopback URL: clients on \
                 other hosts will be sent to themselves; set --issuer to the name they use"
            ));
        }
    }
    if !failures.is_empty() {
        report.add(
            "issuer",
            Level::Fail,
            format!("{issuer}: {}", failures.join("; ")),
        );
        return;
    }
    if !warnings.is_empty() {
        report.add(
            "issuer",
            Level::Warn,
            format!("{issuer}: {}", warnings.join("; ")),
        );
        return;
    }
    report.add(
        "issuer",
        Level::Ok,
        format!(
            "{issuer}, as discovery publishes it at {}/.well-known/oauth-authorization-server",
            settings.auth.base_url()
        ),
    );
}

async fn check_clock(report: &mut Report, store: Option<&SqlStore>, migrated: bool) {
    let now = unix_now();
    if now < CLOCK_FLOOR {
        report.add(
            "clock",
            Level::Fail,
            format!("this host's clock says {now} (before 2020): set it, or run NTP"),
        );
        return;
    }
    let Some(store) = store else {
        report.add("clock", Level::Skip, "no store to compare this clock with");
        return;
    };
    match store.database_now().await {
        Ok(Some(database)) => {
            let ahead = now - database;
            let level = match ahead.abs() {
                d if d > CLOCK_FAIL_SECS => Level::Fail,
                d if d > CLOCK_WARN_SECS => Level::Warn,
                _ => Level::Ok,
            };
            let message = match level {
                Level::Ok => format!("within {CLOCK_WARN_SECS} s of PostgreSQL's"),
                _ => format!(
                    "this host's clock is {} s {} PostgreSQL's: tokens made here are checked \
                     against other nodes' clocks; run NTP (chrony, systemd-timesyncd) on both",
                    ahead.abs(),
                    if ahead > 0 { "ahead of" } else { "behind" }
                ),
            };
            report.add("clock", level, message);
            return;
        }
        Ok(None) => {}
        Err(e) => {
            report.add(
                "clock",
                Level::Warn,
                format!("cannot read PostgreSQL's clock: {e}"),
            );
            return;
        }
    }
    if !migrated {
        report.add(
            "clock",
            Level::Skip,
            "the store has no schema to read times from",
        );
        return;
    }
    match store.newest_recorded_time().await {
        Ok(Some(newest)) if newest - now > CLOCK_FAIL_SECS => report.add(
            "clock",
            Level::Fail,
            format!(
                "the store holds a time {} s ahead of this host's clock: this clock is behind \
                 (or was ahead when that was written). Set it right (NTP) before serving: keys \
                 made in the future do not sign and tokens look not yet valid",
                newest - now
            ),
        ),
        Ok(Some(newest)) if newest - now > CLOCK_WARN_SECS => report.add(
            "clock",
            Level::Warn,
            format!(
                "the store holds a time {} s ahead of this host's clock; check NTP",
                newest - now
            ),
        ),
        Ok(Some(_)) => report.add(
            "clock",
            Level::Ok,
            "no time recorded in the store is ahead of this host's clock",
        ),
        Ok(None) => report.add(
            "clock",
            Level::Ok,
            "nothing recorded in the store yet to compare with",
        ),
        Err(e) => report.add(
            "clock",
            Level::Warn,
            format!("cannot read the store's times: {e}"),
        ),
    }
}

/// A file for `gatehouse gateway --config`: read and checked as that command reads it.
fn check_gateway_file(report: &mut Report, path: &Path, issuer: Option<&str>) {
    let file = match GatewayFile::read(path) {
        Ok(file) => file,
        Err(e) => {
            report.add(
                "gateway routes",
                Level::Fail,
                format!("{e}; `gatehouse gateway` would refuse to start (and SIGHUP keeps the old routes)"),
            );
            return;
        }
    };
    let routes = match file.rules() {
        Ok(rules) => rules.len(),
        Err(e) => {
            report.add("gateway routes", Level::Fail, e.to_string());
            return;
        }
    };
    let section = &file.gateway;
    let mut warnings = Vec::new();
    match &section.issuer {
        None => {
            report.add(
                "gateway routes",
                Level::Fail,
                format!(
                    "{}: [gateway] issuer is missing; `gatehouse gateway` needs issuer = \
                     \"https://…\"",
                    path.display()
                ),
            );
            return;
        }
        Some(theirs) if issuer.is_some_and(|ours| ours != theirs) => warnings.push(format!(
            "its issuer {theirs} is not this configuration's ({}): it refuses tokens of any other",
            issuer.unwrap_or_default()
        )),
        Some(_) => {}
    }
    match (&section.feed_client_id, &section.feed_client_secret_file) {
        (Some(_), Some(file)) => {
            if let Err(e) = std::fs::read_to_string(file) {
                report.add(
                    "gateway routes",
                    Level::Fail,
                    format!("cannot read feed_client_secret_file {file}: {e}"),
                );
                return;
            }
        }
        (Some(_), None) => match secret_from_env("GATEHOUSE_GATEWAY_CLIENT_SECRET") {
            Ok(Some(_)) => {}
            Ok(None) => {
                report.add(
                    "gateway routes",
                    Level::Fail,
                    "feed_client_id is set but its secret is not: set \
                     GATEHOUSE_GATEWAY_CLIENT_SECRET (or _FILE, or feed_client_secret_file)",
                );
                return;
            }
            Err(e) => {
                report.add("gateway routes", Level::Fail, format!("{e:#}"));
                return;
            }
        },
        (None, _) => warnings.push(
            "no feed_client_id: the gateway will not follow revocations, so a revoked token \
             passes until it expires"
                .to_owned(),
        ),
    }
    let summary = format!("{}: {routes} routes valid", path.display());
    match warnings.is_empty() {
        true => report.add("gateway routes", Level::Ok, summary),
        false => report.add(
            "gateway routes",
            Level::Warn,
            format!("{summary}; {}", warnings.join("; ")),
        ),
    }
}

/// `serve`'s own route file, with `{app:NAME}` and `{auth}` filled in as `serve` would.
fn check_serve_routes(report: &mut Report, settings: &Settings) {
    let Some(path) = &settings.gateway.routes_file else {
        return;
    };
    if !settings.gateway.enabled {
        return;
    }
    let mut placeholders: Vec<(String, String)> = gatehouse_apps::App::ALL
        .into_iter()
        .enumerate()
        .map(|(offset, app)| {
            let port = settings
                .apps
                .ports_from
                .saturating_add(u16::try_from(offset).unwrap_or(0));
            (format!("app:{}", app.name()), format!("127.0.0.1:{port}"))
        })
        .collect();
    placeholders.push(("auth".to_owned(), settings.auth_listen.to_string()));
    match GatewayFile::read_with(path, &placeholders).and_then(|file| file.rules()) {
        Ok(rules) => report.add(
            "gateway routes",
            Level::Ok,
            format!("{}: {} routes valid", path.display(), rules.len()),
        ),
        Err(e) => report.add(
            "gateway routes",
            Level::Fail,
            format!(
                "{e}; `gatehouse serve` would refuse to start (and SIGHUP keeps the old routes)"
            ),
        ),
    }
}

/// Where `gatehouse healthcheck` looks unless told: the authorization server's liveness.
pub const DEFAULT_HEALTHCHECK_URL: &str = "http://127.0.0.1:8080/healthz";

/// `gatehouse healthcheck`: GETs `url` once, within `timeout`; fine on a 2xx answer. An
/// `https://` URL's certificate is checked against the system's roots and `ca_file`'s
/// certificates (PEM), and must name the URL's host (`https://localhost:8443/healthz` with a
/// certificate for localhost).
pub async fn healthcheck(
    url: &str,
    timeout: Duration,
    ca_file: Option<&Path>,
) -> anyhow::Result<()> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        for certificate in read_certificates(path)
            .map_err(|reason| anyhow::anyhow!("--ca-file {}: {reason}", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build()?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e:#}"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}");
    }
    Ok(())
}
