//! Settings: defaults, then a TOML file, then `GATEHOUSE_*` environment, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gatehouse_core::AuthConfig;
use gatehouse_core::config::RegistrationMode;
use gatehouse_server::limits::RateLimitConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded SQLite database and the generated key-encryption key live.
    pub data_dir: PathBuf,
    pub auth_listen: SocketAddr,
    /// `postgres://…` to share state between nodes; unset means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// `text` or `json` log lines.
    pub log_format: String,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitConfig,
    /// The gateway `serve` runs beside the authorization server.
    pub gateway: ServeGateway,
    /// The reference applications `serve` runs behind the gateway.
    pub apps: ServeApps,
    /// Timeouts for slow clients and caps on open connections, for every listener.
    pub listeners: gatehouse_listen::ListenerLimits,
    /// Where the Prometheus figures are served, and to whom.
    pub metrics: MetricsSettings,
    /// HTTPS on the authorization server's listener (and, under `serve`, the gateway's). The
    /// derived issuer is then `https://`.
    pub tls: Option<ServeTls>,
}

/// `[tls]`: the listeners' certificate chain and key (PEM; read again on SIGHUP), and the CA
/// the node's own parts (the gateway and the shop under `serve`) trust it by, besides the
/// system's roots: needed for a private CA, or the certificate file itself when it is
/// self-signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
}

impl ServeTls {
    pub fn files(&self) -> gatehouse_listen::TlsFiles {
        gatehouse_listen::TlsFiles {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }

    /// What the node's own parts trust its listeners by, besides the system's roots: the CA
    /// the operator named (for a self-signed certificate, name the certificate file itself).
    pub fn trusted(&self) -> Option<PathBuf> {
        self.ca_file.clone()
    }
}

/// The process's Prometheus figures are served on a listener of their own (loopback by
/// default), and on the public listeners (`/metrics`, `/_gatehouse/metrics`) only to a bearer of
/// the metrics token, from `GATEHOUSE_METRICS_TOKEN` or the file `GATEHOUSE_METRICS_TOKEN_FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: MetricsListen,
    /// Never read from the file: secrets come from the environment.
    #[serde(skip)]
    pub token: Option<gatehouse_listen::MetricsToken>,
}

/// Where the metrics listener binds unless told otherwise (Prometheus's usual exporter port).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            // A constant: the test below sees that it reads.
            listen: DEFAULT_METRICS_LISTEN.parse().unwrap_or(MetricsListen::Off),
            token: None,
        }
    }
}

impl MetricsSettings {
    /// Who may read the figures on the authorization server's and the gateway's listeners.
    pub fn on_public_listeners(&self) -> gatehouse_listen::MetricsAccess {
        gatehouse_listen::MetricsAccess::public(self.token.clone())
    }

    /// The token from the environment, if one is set. One that is set but too short (an empty
    /// file, say) is refused rather than read as "no token", which would open the figures.
    pub fn read_token(&mut self) -> anyhow::Result<()> {
        self.token = match secret_from_env("GATEHOUSE_METRICS_TOKEN")? {
            None => None,
            Some(token) => Some(gatehouse_listen::MetricsToken::new(&token).with_context(
                || {
                    format!(
                        "GATEHOUSE_METRICS_TOKEN must be at least {} characters",
                        gatehouse_listen::MIN_METRICS_TOKEN_LEN
                    )
                },
            )?),
        };
        Ok(())
    }
}

/// Where the metrics listener binds: an address, or `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MetricsListen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "off" => Ok(Self::Off),
            address => address.parse().map(Self::At).map_err(|_| {
                format!(
                    "metrics listen must be an address such as 127.0.0.1:9464, or off; got {text:?}"
                )
            }),
        }
    }
}

impl TryFrom<String> for MetricsListen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<MetricsListen> for String {
    fn from(listen: MetricsListen) -> Self {
        match listen {
            MetricsListen::Off => "off".to_owned(),
            MetricsListen::At(address) => address.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeApps {
    pub enabled: bool,
    /// The apps listen on 127.0.0.1 from this port up (rates, fx, messages, orders, posts, shop);
    /// 0 lets the system pick.
    pub ports_from: u16,
    pub rates: gatehouse_apps::rates::RatesSettings,
    pub orders: gatehouse_apps::orders::OrdersSettings,
    pub shop: gatehouse_apps::shop::ShopSettings,
}

impl Default for ServeApps {
    fn default() -> Self {
        Self {
            enabled: true,
            ports_from: 9101,
            rates: Default::default(),
            orders: Default::default(),
            shop: Default::default(),
        }
    }
}

impl ServeApps {
    pub fn app_settings(&self) -> gatehouse_apps::AppsSettings {
        gatehouse_apps::AppsSettings {
            rates: self.rates.clone(),
            orders: self.orders.clone(),
            shop: self.shop.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeGateway {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// A route file of your own instead of the shipped one (reloaded on SIGHUP).
    pub routes_file: Option<PathBuf>,
    pub staleness_budget_secs: u64,
}

impl Default for ServeGateway {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            routes_file: None,
            staleness_budget_secs: 30,
        }
    }
}

impl Settings {
    /// `https` when the listeners speak TLS.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("gatehouse-data"),
            auth_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            log_format: "text".into(),
            // Empty: derived from the listen address unless set.
            auth: AuthConfig {
                issuer: String::new(),
                ..AuthConfig::default()
            },
            rate_limits: RateLimitConfig::default(),
            gateway: ServeGateway::default(),
            apps: ServeApps::default(),
            listeners: Default::default(),
            metrics: MetricsSettings::default(),
            tls: None,
        }
    }
}

/// Values given as flags (or their environment equivalents, which clap reads).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip)]
    pub gateway_listen: Option<SocketAddr>,
    #[serde(skip)]
    pub gateway_routes: Option<PathBuf>,
    #[serde(skip)]
    pub apps_ports_from: Option<u16>,
    #[serde(skip)]
    pub metrics_listen: Option<MetricsListen>,
}

const MIN_KEY_ACTIVATION_DELAY_SECS: u64 = 90;

pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        if !file.exists() {
            anyhow::bail!("config file {} does not exist", file.display());
        }
        figment = figment.merge(Toml::file(file));
    }
    // Nested settings from the environment, `__` between levels:
    // GATEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS=300, GATEHOUSE_RATE_LIMITS__SIGNUP_PER_IP_PER_MINUTE=5.
    // Flat names (GATEHOUSE_DATA_DIR, …) are flags' environment equivalents, read by clap.
    figment = figment.merge(
        Env::prefixed("GATEHOUSE_")
            .filter(|key| key.as_str().contains("__"))
            .split("__"),
    );
    let issuer = overrides.issuer.clone();
    let metrics_listen = overrides.metrics_listen;
    let (gateway_listen, gateway_routes, apps_ports_from) = (
        overrides.gateway_listen,
        overrides.gateway_routes.clone(),
        overrides.apps_ports_from,
    );
    figment = figment.merge(Serialized::defaults(Overrides {
        issuer: None,
        ..overrides
    }));
    if let Some(issuer) = issuer {
        figment = figment.merge(Serialized::default("auth.issuer", issuer));
    }
    if let Some(listen) = gateway_listen {
        figment = figment.merge(Serialized::default("gateway.listen", listen));
    }
    if let Some(routes) = gateway_routes {
        figment = figment.merge(Serialized::default("gateway.routes_file", routes));
    }
    if let Some(port) = apps_ports_from {
        figment = figment.merge(Serialized::default("apps.ports_from", port));
    }
    if let Some(listen) = metrics_listen {
        figment = figment.merge(Serialized::default("metrics.listen", String::from(listen)));
    }
    let mut settings: Settings = figment.extract().context("invalid configuration")?;
    if settings.auth.issuer.is_empty() {
        settings.auth.issuer = format!("{}://{}", settings.scheme(), settings.auth_listen);
    }
    if let Some(token) = secret_from_env("GATEHOUSE_REGISTRATION_TOKEN")? {
        settings.auth.registration.initial_access_token = Some(token);
    }
    settings.metrics.read_token()?;
    validate(&settings)?;
    Ok(settings)
}

fn validate(settings: &Settings) -> anyhow::Result<()> {
    let issuer = &settings.auth.issuer;
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        anyhow::bail!("issuer must be an http(s) URL, got {issuer:?}");
    }
    // Cookies are marked Secure by the issuer's scheme: a TLS listener under an http:// name
    // would hand out cookies that browsers also send in the clear.
    if settings.tls.is_some() && !issuer.starts_with("https://") {
        anyhow::bail!("with [tls] the issuer must be an https:// URL, got {issuer:?}");
    }
    if settings.auth.access_token_ttl_secs == 0 || settings.auth.refresh_token_ttl_secs == 0 {
        anyhow::bail!("token lifetimes must be positive");
    }
    // Gateways remember a subject's cut-off for a day: no access token may outlive that.
    if settings.auth.access_token_ttl_secs > 86_400 {
        anyhow::bail!("access_token_ttl_secs may be at most 86400 (a day)");
    }
    // Verifiers cache the JWKS for up to 60 s and nodes reload keys every 30 s: a key must be
    // published longer than that before it signs.
    if settings.auth.key_activation_delay_secs < MIN_KEY_ACTIVATION_DELAY_SECS {
        anyhow::bail!(
            "key_activation_delay_secs must be at least {MIN_KEY_ACTIVATION_DELAY_SECS} \
             (JWKS caches and other nodes must have a new key before it signs)"
        );
    }
    let code_ttl = settings.auth.authorization_code_ttl_secs;
    if !(1..=gatehouse_core::config::MAX_AUTHORIZATION_CODE_TTL_SECS).contains(&code_ttl) {
        anyhow::bail!(
            "authorization_code_ttl_secs must be between 1 and {}",
            gatehouse_core::config::MAX_AUTHORIZATION_CODE_TTL_SECS
        );
    }
    if settings.auth.id_token_ttl_secs == 0
        || settings.auth.browser_session_idle_secs == 0
        || settings.auth.browser_session_lifetime_secs == 0
    {
        anyhow::bail!("ID token and browser session lifetimes must be positive");
    }
    let registration = &settings.auth.registration;
    if registration.mode == RegistrationMode::InitialAccessToken
        && registration
            .initial_access_token
            .as_deref()
            .is_none_or(|t| t.len() < 16)
    {
        anyhow::bail!(
            "registration mode initial-access-token needs GATEHOUSE_REGISTRATION_TOKEN \
             (at least 16 characters)"
        );
    }
    let payment = settings.apps.orders.payment_success_rate;
    if !(0.0..=1.0).contains(&payment) {
        anyhow::bail!("apps.orders.payment_success_rate must be between 0 and 1");
    }
    let listeners = &settings.listeners;
    if listeners.header_read_timeout_ms == 0
        || listeners.idle_timeout_ms == 0
        || listeners.body_read_timeout_ms == 0
    {
        anyhow::bail!("the listeners' timeouts must be positive");
    }
    if !matches!(settings.log_format.as_str(), "text" | "json") {
        anyhow::bail!("log_format must be text or json");
    }
    Ok(())
}

/// A secret from `NAME`, or from the file named by `NAME_FILE`.
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<String>> {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return Ok(Some(value));
    }
    if let Ok(path) = std::env::var(format!("{name}_FILE")) {
        let value = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {name}_FILE ({path})"))?;
        return Ok(Some(value.trim().to_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_take_precedence_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "data_dir = \"/tmp/from-file\"\n[auth]\nissuer = \"https://file.example\"\naccess_token_ttl_secs = 60\n",
        )
        .unwrap();
        let s = load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(s.auth.issuer, "https://file.example");
        assert_eq!(s.auth.access_token_ttl_secs, 60);
        let s = load(
            Some(&file),
            Overrides {
                issuer: Some("https://flag.example".into()),
                data_dir: Some("/tmp/flag".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.auth.issuer, "https://flag.example");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/flag"));
        assert_eq!(s.auth.access_token_ttl_secs, 60);
    }

    #[test]
    // figment's Jail API returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn nested_settings_come_from_the_environment() {
        // Jail restores the environment afterwards and serializes tests that use it.
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEHOUSE_AUTH__ACCESS_TOKEN_TTL_SECS", "123");
            jail.set_env("GATEHOUSE_RATE_LIMITS__SIGNUP_PER_IP_PER_MINUTE", "7");
            jail.set_env("GATEHOUSE_ADMIN_USERNAME", "not-a-setting");
            let s = load(None, Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.auth.access_token_ttl_secs, 123);
            assert_eq!(s.rate_limits.signup_per_ip_per_minute, 7);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_readme_configuration_file_is_valid_and_says_the_defaults() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("The TOML file, with every setting at its default:")
            .nth(1)
            .unwrap();
        let example = section
            .split("```toml")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.create_file("gatehouse.toml", example)?;
            let s = load(Some(Path::new("gatehouse.toml")), Overrides::default())
                .map_err(|e| format!("{e:#}"))?;
            let defaults = Settings::default();
            assert_eq!(s.apps.ports_from, defaults.apps.ports_from);
            assert_eq!(s.apps.rates.tick_secs, defaults.apps.rates.tick_secs);
            assert_eq!(s.apps.rates.seed.len(), defaults.apps.rates.seed.len());
            assert_eq!(s.gateway.listen, defaults.gateway.listen);
            assert_eq!(
                s.auth.access_token_ttl_secs,
                defaults.auth.access_token_ttl_secs
            );
            assert_eq!(s.metrics.listen, defaults.metrics.listen);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_metrics_listener_is_an_address_or_off_and_the_token_comes_from_the_environment() {
        assert_eq!(
            Settings::default().metrics.listen,
            MetricsListen::At(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file("off.toml", "[metrics]\nlisten = \"off\"\n")?;
            let s = load(Some(Path::new("off.toml")), Overrides::default())
                .map_err(|e| format!("{e:#}"))?;
            assert_eq!(s.metrics.listen, MetricsListen::Off);
            assert!(s.metrics.token.is_none());
            assert!(matches!(
                s.metrics.on_public_listeners(),
                gatehouse_listen::MetricsAccess::Hidden
            ));

            jail.create_file("bad.toml", "[metrics]\nlisten = \"everywhere\"\n")?;
            let refused = load(Some(Path::new("bad.toml")), Overrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(refused.contains("127.0.0.1:9464, or off"), "{refused}");

            // A token in the file is refused: secrets come from the environment only.
            jail.create_file("token.toml", "[metrics]\ntoken = \"in-the-file\"\n")?;
            assert!(load(Some(Path::new("token.toml")), Overrides::default()).is_err());

            jail.set_env("GATEHOUSE_METRICS_TOKEN", "too-short");
            let refused = load(None, Overrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(refused.contains("at least 16 characters"), "{refused}");
            assert!(!refused.contains("too-short"), "{refused}");

            jail.set_env("GATEHOUSE_METRICS_TOKEN", "from-the-environment");
            let s = load(
                None,
                Overrides {
                    metrics_listen: Some("127.0.0.1:0".parse().map_err(|e: String| e)?),
                    ..Default::default()
                },
            )
            .map_err(|e| format!("{e:#}"))?;
            assert_eq!(
                s.metrics.listen,
                MetricsListen::At("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            );
            assert!(matches!(
                s.metrics.on_public_listeners(),
                gatehouse_listen::MetricsAccess::Token(_)
            ));
            assert!(!format!("{:?}", s.metrics).contains("from-the-environment"));
            Ok(())
        });
    }

    #[test]
    fn issuer_defaults_to_the_listen_address() {
        let s = load(None, Overrides::default()).unwrap();
        assert_eq!(s.auth.issuer, "http://127.0.0.1:8080");
        let s = load(
            None,
            Overrides {
                auth_listen: Some("127.0.0.1:9999".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.auth.issuer, "http://127.0.0.1:9999");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        assert!(load(Some(&file), Overrides::default()).is_err());
        std::fs::write(&file, "[auth]\nissuer = \"ftp://x\"\n").unwrap();
        assert!(load(Some(&file), Overrides::default()).is_err());
        assert!(load(Some(&dir.path().join("missing.toml")), Overrides::default()).is_err());
        std::fs::write(
            &file,
            "[auth.registration]\nmode = \"initial-access-token\"\n",
        )
        .unwrap();
        let refused = load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{refused:#}").contains("GATEHOUSE_REGISTRATION_TOKEN"));
    }
}
