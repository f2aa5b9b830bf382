//! Starting and stopping the servers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_core::AuthService;
use gatehouse_server::AppState;
use gatehouse_store::SqlStore;
use gatehouse_token::KeyEncryptionKey;
use tokio::net::TcpListener;

use crate::config::{Settings, secret_from_env};

/// For one-shot commands: warnings and errors only, unless `GATEHOUSE_LOG` says otherwise.
pub fn init_logging_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The configured store: PostgreSQL when a database URL is set, else SQLite in the data directory.
pub async fn open_store(settings: &Settings) -> anyhow::Result<SqlStore> {
    match &settings.database_url {
        Some(url) => SqlStore::connect(url).await,
        None => SqlStore::open_sqlite_dir(&settings.data_dir).await,
    }
    .context("cannot open the store")
}

pub async fn serve(mut settings: Settings, with_gateway: bool) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.auth_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.auth_listen))?;
    let address = listener.local_addr()?;
    // An issuer derived from a listen address with port 0 names the port actually bound.
    if settings.auth.issuer == format!("http://{}", settings.auth_listen) {
        settings.auth.issuer = format!("http://{address}");
    }
    let store = open_store(&settings).await?;
    let kek = load_kek(&settings)?;
    let store_handle = store.clone();
    let service = AuthService::start(settings.auth.clone(), Arc::new(store), kek)
        .await
        .context("cannot start the authorization server")?;
    bootstrap_admin(&service).await?;

    let with_gateway = with_gateway && settings.gateway.enabled;
    // The apps run behind the gateway, so only with it.
    let app_listeners = match with_gateway && settings.apps.enabled {
        true => crate::apps_run::bind(settings.apps.ports_from).await?,
        false => Vec::new(),
    };
    let gateway_listener = match with_gateway {
        true => Some(
            TcpListener::bind(settings.gateway.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.gateway.listen))?,
        ),
        false => None,
    };
    let service = Arc::new(service);
    tokio::spawn(purge_periodically(service.clone()));
    tokio::spawn(reload_keys_periodically(service.clone()));
    // Changes made through other nodes or the CLI apply here within a second.
    tokio::spawn(
        service
            .clone()
            .follow_changes(std::time::Duration::from_millis(250)),
    );
    let limits = Arc::new(gatehouse_server::limits::RateLimits::new(
        &settings.rate_limits,
    ));
    tokio::spawn(forget_idle_limits(limits.clone()));
    let state = AppState::new(service.clone(), gatehouse_server::install_metrics(), limits);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let shutdown = shutdown_signal()?;
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_on_signal.send(true);
    });
    let auth_server = tokio::spawn(gatehouse_server::serve(
        listener,
        state,
        stopped(stopping.clone()),
    ));
    let placeholders = crate::apps_run::placeholders(&app_listeners)?;
    let mut app_servers = Vec::new();
    let gateway_server = match gateway_listener {
        Some(gateway_listener) => {
            let gateway = start_gateway(&settings, &service, placeholders).await?;
            let gateway_address = gateway_listener.local_addr()?;
            if !app_listeners.is_empty() {
                app_servers = crate::apps_run::start(
                    app_listeners,
                    &crate::apps_run::db(&store_handle),
                    gateway.verifier(),
                    &settings.apps.app_settings(),
                    stopping.clone(),
                )
                .await?;
            }
            println!("  gateway               http://{gateway_address}");
            Some(tokio::spawn(
                gateway.serve(gateway_listener, stopped(stopping.clone())),
            ))
        }
        None => None,
    };

    println!("Gatehouse is running");
    println!("  authorization server  http://{address}");
    println!("  issuer                {}", settings.auth.issuer);
    println!("  discovery             http://{address}/.well-known/oauth-authorization-server");
    println!("  API docs              http://{address}/docs");
    println!(
        "  store                 {}",
        match &settings.database_url {
            Some(_) => "PostgreSQL".to_owned(),
            None => format!("SQLite in {}", settings.data_dir.display()),
        }
    );
    // Every server runs until shutdown; one that ends early (it failed) stops the others too,
    // so the process never lives on half-started.
    let mut servers: futures::stream::FuturesUnordered<_> = std::iter::once(auth_server)
        .chain(gateway_server)
        .chain(app_servers)
        .collect();
    let mut first_error = None;
    while let Some(ended) = futures::StreamExt::next(&mut servers).await {
        let _ = stop.send(true);
        let result = ended
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(Into::into));
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "a server failed; stopping");
            first_error.get_or_insert(e);
        }
    }
    store_handle.close().await;
    if let Some(e) = first_error {
        return Err(e);
    }
    tracing::info!("stopped");
    Ok(())
}

pub async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The gateway beside the authorization server: the shipped routes (or `gateway.routes_file`),
/// reading the revocation feed with a client of its own.
async fn start_gateway(
    settings: &Settings,
    service: &AuthService,
    placeholders: Vec<(String, String)>,
) -> anyhow::Result<Arc<gatehouse_gateway::Gateway>> {
    let file = match &settings.gateway.routes_file {
        Some(path) => gatehouse_gateway::GatewayFile::read_with(path, &placeholders)?,
        None => gatehouse_gateway::GatewayFile::parse(
            &gatehouse_gateway::substitute(crate::gateway_run::SHIPPED_ROUTES, &placeholders),
            "the shipped gateway.toml",
        )?,
    };
    let feed = crate::gateway_run::ensure_feed_client(service, &settings.data_dir).await?;
    let section = gatehouse_gateway::GatewaySection {
        staleness_budget_secs: settings.gateway.staleness_budget_secs,
        leeway_secs: settings.auth.token_leeway_secs,
        audience: settings.auth.audience.clone(),
        ..file.gateway.clone()
    };
    let gateway = crate::gateway_run::build(
        &section,
        &settings.auth.issuer,
        file.rules()?,
        settings.gateway.routes_file.clone(),
        placeholders,
        Some(feed),
    )
    .await?;
    crate::gateway_run::reload_on_hangup(gateway.clone())?;
    Ok(gateway)
}

/// `GATEHOUSE_KEK` (or `GATEHOUSE_KEK_FILE`), else a key generated once into the data directory.
pub fn load_kek(settings: &Settings) -> anyhow::Result<KeyEncryptionKey> {
    if let Some(text) = secret_from_env("GATEHOUSE_KEK")? {
        return KeyEncryptionKey::parse(&text).context("GATEHOUSE_KEK is invalid");
    }
    if settings.database_url.is_some() {
        tracing::warn!(
            "no GATEHOUSE_KEK set: using a key file in the data directory; every node sharing \
             this database needs the same key"
        );
    }
    let path = settings.data_dir.join("kek.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return KeyEncryptionKey::parse(&text)
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let kek = KeyEncryptionKey::generate()?;
    write_private_file(&path, &kek.to_hex())?;
    tracing::info!(path = %path.display(), "generated a key-encryption key");
    Ok(kek)
}

pub fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

async fn bootstrap_admin(service: &AuthService) -> anyhow::Result<()> {
    let username = std::env::var("GATEHOUSE_ADMIN_USERNAME").ok();
    let password = secret_from_env("GATEHOUSE_ADMIN_PASSWORD")?;
    match (username, password) {
        (Some(username), Some(password)) => {
            let created = service
                .ensure_admin(&username, &password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the admin user: {e}"))?;
            if created {
                tracing::info!(%username, "created the admin user");
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => anyhow::bail!(
            "set both GATEHOUSE_ADMIN_USERNAME and GATEHOUSE_ADMIN_PASSWORD, or neither"
        ),
    }
}

/// A safety net under the change log for key rotations made through other nodes. The activation
/// delay (default 120 s) is longer than this period plus the JWKS cache lifetime, so every node
/// publishes a new key before any node signs with it even if a change-log entry were lost.
async fn reload_keys_periodically(service: Arc<AuthService>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = service.reload_keys().await {
            tracing::warn!(error = %e, "reloading the signing keys failed");
        }
    }
}

async fn forget_idle_limits(limits: Arc<gatehouse_server::limits::RateLimits>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        limits.forget_idle();
    }
}

/// Expired deny entries and refresh families are of no use; remove them now and then.
async fn purge_periodically(service: Arc<AuthService>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        match service.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "purged expired revocations and sessions"),
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are registered here, before the server says it is
/// ready, so a signal that arrives right after start still drains instead of killing the process.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down: finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing in-flight requests");
        })
    }
}
