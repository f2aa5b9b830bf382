//! The reference applications' part of a node: all of them behind the gateway under `serve`, or
//! one alone (`gatehouse app NAME`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_apps::shop::{SHOP_CLIENT_ID, SHOP_PATH, SHOP_SCOPE, ShopClient, ShopSettings};
use gatehouse_apps::{App, AppsSettings, Db};
use gatehouse_core::AuthService;
use gatehouse_core::service::FirstPartyApp;
use gatehouse_sdk::{FeedCredentials, TokenVerifier, VerifierSettings};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Settings, secret_from_env};

/// Binds every app's loopback port before anything starts, so the gateway's routes can name them.
pub async fn bind(ports_from: u16) -> anyhow::Result<Vec<(App, TcpListener)>> {
    let mut bound = Vec::with_capacity(App::ALL.len());
    for (offset, app) in App::ALL.into_iter().enumerate() {
        let port = match ports_from {
            0 => 0,
            from => from
                .checked_add(offset as u16)
                .context("apps.ports_from is too high")?,
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        bound.push((app, bind_one(app, address).await?));
    }
    Ok(bound)
}

pub async fn bind_one(app: App, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the {} app", app.name()))
}

/// `app:NAME` → the address it listens on, for the route file's `{app:NAME}` placeholders.
pub fn placeholders(bound: &[(App, TcpListener)]) -> anyhow::Result<Vec<(String, String)>> {
    bound
        .iter()
        .map(|(app, listener)| {
            Ok((
                format!("app:{}", app.name()),
                listener.local_addr()?.to_string(),
            ))
        })
        .collect()
}

/// Prepares each app (tables, seed data, background work) and serves it until `stopping`, within
/// the process's budget of open `connections`.
pub async fn serve(
    bound: Vec<(App, TcpListener)>,
    db: &Db,
    verifier: &Arc<TokenVerifier>,
    settings: &AppsSettings,
    connections: &gatehouse_listen::Connections,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<(App, SocketAddr, JoinHandle<std::io::Result<()>>)>> {
    let mut servers = Vec::with_capacity(bound.len());
    for (app, listener) in bound {
        let router = gatehouse_apps::router(app, db, verifier, settings)
            .await
            .with_context(|| format!("cannot start the {} app", app.name()))?;
        let address = listener.local_addr()?;
        let stopping = stopping.clone();
        let connections = connections.clone();
        let server = tokio::spawn(async move {
            let name = format!("app:{}", app.name());
            let stopped = crate::process::stopped(stopping);
            gatehouse_listen::serve(listener, &name, router, connections, stopped).await
        });
        servers.push((app, address, server));
    }
    Ok(servers)
}

/// The verifier of an app alone: the issuer's keys, and its revocation feed when
/// `GATEHOUSE_APP_FEED_CLIENT_ID`/`_SECRET` name a client that may read it.
pub async fn alone_verifier(settings: &Settings) -> anyhow::Result<Arc<TokenVerifier>> {
    let feed = match (
        std::env::var("GATEHOUSE_APP_FEED_CLIENT_ID").ok(),
        secret_from_env("GATEHOUSE_APP_FEED_CLIENT_SECRET")?,
    ) {
        (Some(client_id), Some(client_secret)) => Some(FeedCredentials {
            client_id,
            client_secret,
        }),
        _ => {
            tracing::warn!(
                "no GATEHOUSE_APP_FEED_CLIENT_ID/SECRET: this app will not learn of revocations, \
                 so a revoked token stays valid here until it expires"
            );
            None
        }
    };
    let verifier = TokenVerifier::connect(VerifierSettings {
        feed,
        leeway_secs: settings.auth.token_leeway_secs,
        audience: settings.auth.audience.clone(),
        ..VerifierSettings::new(&settings.auth.issuer)
    })
    .await
    .context("cannot reach the issuer")?;
    crate::verifier::until_current(&verifier, "the app").await;
    Ok(verifier)
}

/// The shop under `serve`: registered with this node's authorization server on first start (a
/// first-party client whose secret every node derives alike; after an operator rotated it, give
/// the node the new one as `GATEHOUSE_SHOP_CLIENT_SECRET`), reached by browsers and calling the
/// APIs through the gateway at `gateway` unless its settings name other addresses. Its tokens
/// are sealed with `sealing_key`.
pub async fn shop_beside_auth(
    service: &AuthService,
    configured: &ShopSettings,
    gateway: SocketAddr,
    sealing_key: [u8; 32],
    tls: Option<&crate::config::ServeTls>,
) -> anyhow::Result<ShopSettings> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let gateway_url = format!("{scheme}://{gateway}");
    let public_url = match (&configured.public_url, gateway.ip()) {
        (Some(url), _) => url.clone(),
        (None, ip) if ip.is_loopback() => format!("{gateway_url}{SHOP_PATH}"),
        (None, _) => anyhow::bail!(
            "the gateway listens on {gateway}: set apps.shop.public_url to the shop's address \
             as browsers reach it (e.g. https://www.example.com/shop)"
        ),
    };
    let api_url = match &configured.api_url {
        Some(url) => url.clone(),
        None if gateway.ip().is_unspecified() => {
            format!(
                "{scheme}://{}",
                SocketAddr::from(([127, 0, 0, 1], gateway.port()))
            )
        }
        None => gateway_url,
    };
    let registration = service
        .ensure_first_party_app(&FirstPartyApp {
            client_id: SHOP_CLIENT_ID,
            name: "Gatehouse shop",
            redirect_uri: ShopSettings::redirect_uri(&public_url),
            post_logout_redirect_uri: ShopSettings::signed_out_uri(&public_url),
            scope: SHOP_SCOPE,
        })
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot register the shop with the authorization server: {e}")
        })?;
    let client_secret = match secret_from_env("GATEHOUSE_SHOP_CLIENT_SECRET")? {
        Some(secret) => secret,
        None => {
            if !registration.secret_is_derived {
                tracing::error!(
                    "the shop's client secret was rotated: give the node the new one as \
                     GATEHOUSE_SHOP_CLIENT_SECRET, or nobody can sign in to the shop"
                );
            }
            registration.derived_secret
        }
    };
    Ok(ShopSettings {
        public_url: Some(public_url),
        api_url: Some(api_url),
        ca_file: configured
            .ca_file
            .clone()
            .or_else(|| tls.and_then(crate::config::ServeTls::trusted)),
        client: Some(ShopClient {
            client_id: SHOP_CLIENT_ID.into(),
            client_secret,
            sealing_key: hex(&sealing_key),
        }),
    })
}

/// The shop alone (`gatehouse app shop`): its client comes from `GATEHOUSE_SHOP_CLIENT_ID` and
/// `GATEHOUSE_SHOP_CLIENT_SECRET(_FILE)`, registered by an operator with the redirect URI
/// `<public_url>/callback` and the post-logout URI `<public_url>/signed-out`; the key that seals
/// the tokens it keeps from `GATEHOUSE_SHOP_SEALING_KEY(_FILE)` (32 bytes, hex or base64).
pub fn shop_alone(configured: &ShopSettings) -> anyhow::Result<ShopSettings> {
    let client_id = std::env::var("GATEHOUSE_SHOP_CLIENT_ID")
        .context("the shop needs GATEHOUSE_SHOP_CLIENT_ID (a code-flow client of the issuer)")?;
    let client_secret = secret_from_env("GATEHOUSE_SHOP_CLIENT_SECRET")?.context(
        "the shop needs GATEHOUSE_SHOP_CLIENT_SECRET or GATEHOUSE_SHOP_CLIENT_SECRET_FILE",
    )?;
    let sealing_key = secret_from_env("GATEHOUSE_SHOP_SEALING_KEY")?.context(
        "the shop needs GATEHOUSE_SHOP_SEALING_KEY or GATEHOUSE_SHOP_SEALING_KEY_FILE \
         (32 random bytes, hex or base64: `openssl rand -hex 32`)",
    )?;
    Ok(ShopSettings {
        client: Some(ShopClient {
            client_id,
            client_secret,
            sealing_key,
        }),
        ..configured.clone()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
