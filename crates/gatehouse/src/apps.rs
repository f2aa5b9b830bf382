//! The reference applications' part of a node: all five behind the gateway under `serve`, or one
//! alone (`gatehouse app NAME`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_apps::{App, AppsSettings, Db};
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

/// Prepares each app (tables, seed data, background work) and serves it until `stopping`.
pub async fn serve(
    bound: Vec<(App, TcpListener)>,
    db: &Db,
    verifier: &Arc<TokenVerifier>,
    settings: &AppsSettings,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<(App, SocketAddr, JoinHandle<std::io::Result<()>>)>> {
    let mut servers = Vec::with_capacity(bound.len());
    for (app, listener) in bound {
        let router = gatehouse_apps::router(app, db, verifier, settings)
            .await
            .with_context(|| format!("cannot start the {} app", app.name()))?;
        let address = listener.local_addr()?;
        let stopping = stopping.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(crate::process::stopped(stopping))
                .await
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
