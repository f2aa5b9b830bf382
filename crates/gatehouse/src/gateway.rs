//! The gateway part of a node: alone from its own file (`gatehouse gateway`), or beside the
//! authorization server under `gatehouse serve` with routes to the reference apps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatehouse_core::service::Actor;
use gatehouse_core::{AuthService, RequestContext};
use gatehouse_gateway::{Gateway, GatewayFile, GatewayOptions, GatewaySection};
use gatehouse_proto::admin::NewClient;
use gatehouse_sdk::files::write_private_file;
use gatehouse_sdk::{FeedCredentials, VerifierSettings};
use serde::{Deserialize, Serialize};

use crate::config::{ServeTls, Settings, secret_from_env};

/// The routes `gatehouse serve` uses unless `gateway.routes_file` names others.
pub const SHIPPED_ROUTES: &str = include_str!("../gateway.toml");

/// The gateway's settings from its own file (`gatehouse gateway --config FILE`): its section,
/// issuer, routes and feed credentials.
pub struct AloneSettings {
    pub section: GatewaySection,
    pub issuer: String,
    pub rules: Vec<gatehouse_gateway::RouteRule>,
    pub feed: Option<FeedCredentials>,
}

pub fn read_alone_settings(path: &Path) -> anyhow::Result<AloneSettings> {
    let file = GatewayFile::read(path)?;
    let rules = file.rules()?;
    let section = file.gateway;
    let issuer = section
        .issuer
        .clone()
        .context("the gateway file needs [gateway] issuer = \"https://…\"")?;
    let secret = match &section.feed_client_secret_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read feed_client_secret_file {file}"))?
                .trim()
                .to_owned(),
        ),
        None => secret_from_env("GATEHOUSE_GATEWAY_CLIENT_SECRET")?,
    };
    let feed = match (&section.feed_client_id, secret) {
        (Some(client_id), Some(client_secret)) => Some(FeedCredentials {
            client_id: client_id.clone(),
            client_secret,
        }),
        (Some(_), None) => anyhow::bail!(
            "feed_client_id is set but its secret is not: set GATEHOUSE_GATEWAY_CLIENT_SECRET"
        ),
        (None, _) => {
            tracing::warn!(
                "no feed_client_id: the gateway will not learn of revocations, so a revoked \
                 token stays valid until it expires"
            );
            None
        }
    };
    Ok(AloneSettings {
        section,
        issuer,
        rules,
        feed,
    })
}

/// Connects to the issuer (retrying while it starts) and builds the gateway.
pub async fn connect(
    section: &GatewaySection,
    issuer: &str,
    rules: Vec<gatehouse_gateway::RouteRule>,
    routes_file: Option<PathBuf>,
    placeholders: Vec<(String, String)>,
    feed: Option<FeedCredentials>,
    metrics_access: gatehouse_listen::MetricsAccess,
) -> anyhow::Result<Arc<Gateway>> {
    let ca_file = section.ca_file.as_deref();
    let upstream_tls = gatehouse_gateway::upstream_tls(ca_file)
        .context("cannot set up TLS for https:// upstreams")?;
    let settings = VerifierSettings {
        http: Some(issuer_client(ca_file)?),
        // The default for routes that name no audience of their own.
        audience: section.audience.clone(),
        leeway_secs: section.leeway_secs,
        jwks_cooldown: Duration::from_secs(section.jwks_cooldown_secs),
        cache_capacity: section.token_cache_capacity,
        feed,
        staleness_budget: Duration::from_secs(section.staleness_budget_secs),
        introspect_when_stale: section.introspect_when_stale,
        ..VerifierSettings::new(issuer)
    };
    let verifier = crate::verifier::connect(settings).await?;
    crate::verifier::until_current(&verifier, "the gateway").await;
    Ok(Gateway::new(
        rules,
        routes_file,
        placeholders,
        verifier,
        gatehouse_server::install_metrics(),
        GatewayOptions {
            metrics_access,
            forward_auth_from: section.forward_auth_from.clone(),
            upstream_tls,
        },
    ))
}

/// The client the gateway reaches its issuer with: the system's roots, and `ca_file`'s
/// certificates besides.
fn issuer_client(ca_file: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("no usable certificate in {}", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
}

/// SIGHUP reads the route file again; a broken file is refused and the old routes stay.
pub fn reload_on_hangup(gateway: Arc<Gateway>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match gateway.reload() {
                    Ok(count) => tracing::info!(routes = count, "gateway routes reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "the route file was refused; the routes in force stay"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(gateway);
    Ok(())
}

/// The built-in gateway's credentials for the revocation feed, kept in the data directory.
#[derive(Serialize, Deserialize)]
struct StoredFeedClient {
    client_id: String,
    client_secret: String,
}

const FEED_CLIENT_FILE: &str = "gateway-client.json";

/// Under `serve`, the built-in gateway reads the feed as a client of its own: made on first
/// start (or when it has been deleted) and kept in `gateway-client.json` (mode 0600).
pub async fn ensure_feed_client(
    service: &AuthService,
    data_dir: &Path,
) -> anyhow::Result<FeedCredentials> {
    let path = data_dir.join(FEED_CLIENT_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(stored) = serde_json::from_str::<StoredFeedClient>(&text)
        && service
            .store()
            .client(&stored.client_id)
            .await
            .context("cannot read the gateway's client")?
            .is_some()
    {
        return Ok(FeedCredentials {
            client_id: stored.client_id,
            client_secret: stored.client_secret,
        });
    }
    let created = service
        .admin_create_client(
            &Actor {
                id: "system:serve".into(),
            },
            NewClient {
                name: "Built-in gateway".into(),
                grant_types: Some(vec!["client_credentials".into()]),
                // Reads the feed, and introspects tokens when `introspect_when_stale` is set.
                scope: Some(format!(
                    "{} {}",
                    gatehouse_core::service::FEED_SCOPE,
                    gatehouse_core::service::INTROSPECT_SCOPE
                )),
                roles: Vec::new(),
                token_endpoint_auth_method: None,
                redirect_uris: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                skip_consent: false,
            },
            &RequestContext::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the gateway's client: {e}"))?;
    let stored = StoredFeedClient {
        client_id: created.client.client_id.clone(),
        client_secret: created
            .client_secret
            .context("the gateway's client got no secret")?,
    };
    // On PostgreSQL with GATEHOUSE_KEK nothing else may have made the data directory.
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Replaces a file whose client is gone or which could not be read.
    if path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    write_private_file(&path, &serde_json::to_string(&stored)?)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(FeedCredentials {
        client_id: stored.client_id,
        client_secret: stored.client_secret,
    })
}

/// The gateway beside the authorization server: the shipped routes (or `gateway.routes_file`),
/// reading the revocation feed with a client of its own. `placeholders` fill the route file's
/// `{app:NAME}` (each app's address) and `{auth}` (the authorization server's).
pub async fn beside_auth(
    settings: &Settings,
    service: &AuthService,
    placeholders: Vec<(String, String)>,
) -> anyhow::Result<Arc<Gateway>> {
    let file = match &settings.gateway.routes_file {
        Some(path) => GatewayFile::read_with(path, &placeholders)?,
        None => GatewayFile::parse(
            &gatehouse_gateway::substitute(SHIPPED_ROUTES, &placeholders),
            "the shipped gateway.toml",
        )?,
    };
    let feed = ensure_feed_client(service, &settings.data_dir).await?;
    let section = GatewaySection {
        // The gateway reaches this node's own listener, which may serve this certificate.
        ca_file: settings.tls.as_ref().and_then(ServeTls::trusted),
        staleness_budget_secs: settings.gateway.staleness_budget_secs,
        leeway_secs: settings.auth.token_leeway_secs,
        audience: settings.auth.audience.clone(),
        ..file.gateway.clone()
    };
    let gateway = connect(
        &section,
        &settings.auth.issuer,
        file.rules()?,
        settings.gateway.routes_file.clone(),
        placeholders,
        Some(feed),
        settings.metrics.on_public_listeners(),
    )
    .await?;
    reload_on_hangup(gateway.clone())?;
    Ok(gateway)
}
