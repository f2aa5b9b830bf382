//! Running the reference applications: all five behind the gateway under `serve`, or one alone
//! (`gatehouse app NAME`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_apps::{App, AppsSettings, Db};
use gatehouse_sdk::TokenVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The apps' handle on the store.
pub fn db(store: &gatehouse_store::SqlStore) -> Db {
    let engine = match store.backend() {
        gatehouse_store::Backend::Sqlite => gatehouse_apps::Engine::Sqlite,
        gatehouse_store::Backend::Postgres => gatehouse_apps::Engine::Postgres,
    };
    Db::new(store.pool().clone(), engine)
}

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
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for the {} app", app.name()))?;
        bound.push((app, listener));
    }
    Ok(bound)
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
pub async fn start(
    bound: Vec<(App, TcpListener)>,
    db: &Db,
    verifier: &Arc<TokenVerifier>,
    settings: &AppsSettings,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<std::io::Result<()>>>> {
    let mut servers = Vec::with_capacity(bound.len());
    for (app, listener) in bound {
        let router = gatehouse_apps::router(app, db, verifier, settings)
            .await
            .with_context(|| format!("cannot start the {} app", app.name()))?;
        println!("  app {:<18} http://{}", app.name(), listener.local_addr()?);
        let stopping = stopping.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(crate::run::stopped(stopping))
                .await
        }));
    }
    Ok(servers)
}

/// `gatehouse app NAME`: one app alone, verifying tokens against `issuer`, with its tables in the
/// store the settings name.
pub async fn run_alone(
    app: App,
    listen: SocketAddr,
    settings: crate::config::Settings,
) -> anyhow::Result<()> {
    let store = crate::run::open_store(&settings).await?;
    let feed = match (
        std::env::var("GATEHOUSE_APP_FEED_CLIENT_ID").ok(),
        crate::config::secret_from_env("GATEHOUSE_APP_FEED_CLIENT_SECRET")?,
    ) {
        (Some(client_id), Some(client_secret)) => Some(gatehouse_sdk::FeedCredentials {
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
    let verifier = TokenVerifier::connect(gatehouse_sdk::VerifierSettings {
        feed,
        leeway_secs: settings.auth.token_leeway_secs,
        audience: settings.auth.audience.clone(),
        ..gatehouse_sdk::VerifierSettings::new(&settings.auth.issuer)
    })
    .await
    .context("cannot reach the issuer")?;
    crate::gateway_run::until_current(&verifier, "the app").await;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let shutdown = crate::run::shutdown_signal()?;
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let db = db(&store);
    let servers = start(
        vec![(app, listener)],
        &db,
        &verifier,
        &settings.apps.app_settings(),
        stopping,
    )
    .await?;
    println!("Gatehouse app {} is running", app.name());
    for server in servers {
        server.await??;
    }
    store.close().await;
    Ok(())
}
