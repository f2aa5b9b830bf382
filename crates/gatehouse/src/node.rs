//! One running node: whatever parts a command asked for, started from typed settings, with the
//! addresses they bound and one way to stop them all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use gatehouse_apps::App;
use gatehouse_apps::rates_client::RatesClientArgs;
use gatehouse_core::AuthService;
use gatehouse_server::ServerSettings;
use gatehouse_store::SqlStore;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{MetricsListen, MetricsSettings, Settings};
use crate::process::stopped;
use crate::{apps, files, gateway, process};

/// What a node runs.
pub enum NodeSpec {
    /// `gatehouse serve`: the authorization server and, unless the settings turn them off, the
    /// gateway and the reference apps behind it.
    Serve(Settings),
    /// `gatehouse auth`: the authorization server alone.
    Auth(Settings),
    /// `gatehouse gateway`: the gateway alone, from its route file.
    Gateway {
        file: PathBuf,
        listen: Option<SocketAddr>,
        metrics: MetricsSettings,
    },
    /// `gatehouse app NAME`: one reference app alone, with its tables in the settings' store.
    App {
        app: App,
        listen: SocketAddr,
        settings: Settings,
    },
    /// `gatehouse rates-client`: the reference machine client.
    RatesClient {
        args: RatesClientArgs,
        listen: SocketAddr,
    },
}

/// Where a node's parts listen, and what it tells its clients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Addresses {
    pub auth: Option<SocketAddr>,
    pub issuer: Option<String>,
    pub gateway: Option<SocketAddr>,
    /// The reference apps, by name.
    pub apps: BTreeMap<String, SocketAddr>,
    pub rates_client: Option<SocketAddr>,
    /// The listener of the Prometheus figures.
    pub metrics: Option<SocketAddr>,
    /// Which store the node uses, for people to read.
    pub store: Option<String>,
}

type Server = JoinHandle<std::io::Result<()>>;

/// A running node. Every part runs until [`Node::shutdown`]; one that ends early (it failed)
/// stops the others too, so a node never lives on half-started.
pub struct Node {
    pub addresses: Addresses,
    stop: Arc<watch::Sender<bool>>,
    servers: Vec<Server>,
    store: Option<SqlStore>,
    /// The process's budget of open connections, shared by every listener it runs.
    connections: gatehouse_listen::Connections,
}

/// Starts the parts `spec` names and returns once each is listening (and, for parts that check
/// tokens, current with the revocation feed).
pub async fn start(spec: NodeSpec) -> anyhow::Result<Node> {
    let (stop, stopping) = watch::channel(false);
    // Before any listener: each registers its counters with the recorder when it starts.
    gatehouse_server::install_metrics();
    let (limits, metrics) = match &spec {
        NodeSpec::Serve(settings) | NodeSpec::Auth(settings) | NodeSpec::App { settings, .. } => {
            (settings.listeners.clone(), Some(settings.metrics.clone()))
        }
        NodeSpec::Gateway { metrics, .. } => (Default::default(), Some(metrics.clone())),
        NodeSpec::RatesClient { .. } => (Default::default(), None),
    };
    // Bound first, so a port already taken (a second node on the host) is told before anything
    // else starts; served last, once the node is up.
    let metrics_listener = match metrics.as_ref().map(|m| m.listen) {
        Some(MetricsListen::At(address)) => Some(bind(address).await.context(
            "the metrics listener ([metrics] listen or --metrics-listen): give each node on a \
             host its own port, or `off`",
        )?),
        Some(MetricsListen::Off) | None => None,
    };
    let mut node = Node {
        addresses: Addresses::default(),
        stop: Arc::new(stop),
        servers: Vec::new(),
        store: None,
        // Made once, before any listener: it raises the open-files limit the caps derive from.
        connections: gatehouse_listen::Connections::new(limits.clone()),
    };
    let metrics_stopping = stopping.clone();
    let started = match spec {
        NodeSpec::Serve(settings) => node.start_auth(settings, true, stopping).await,
        NodeSpec::Auth(settings) => node.start_auth(settings, false, stopping).await,
        NodeSpec::Gateway {
            file,
            listen,
            metrics,
        } => {
            node.start_gateway_alone(file, listen, &metrics, stopping)
                .await
        }
        NodeSpec::App {
            app,
            listen,
            settings,
        } => node.start_app_alone(app, listen, settings, stopping).await,
        NodeSpec::RatesClient { args, listen } => {
            let listener = bind(listen).await?;
            node.addresses.rates_client = Some(listener.local_addr()?);
            node.servers
                .push(tokio::spawn(gatehouse_apps::rates_client::serve(
                    args,
                    listener,
                    node.connections.clone(),
                    stopped(stopping),
                )));
            Ok(())
        }
    };
    let started = match (started, metrics_listener, metrics) {
        (Ok(()), Some(listener), Some(metrics)) => {
            node.serve_metrics(listener, &metrics, limits, metrics_stopping)
        }
        (started, _, _) => started,
    };
    if let Err(e) = started {
        // Parts already running stop with the node that failed to start.
        node.shutdown();
        if let Some(store) = &node.store {
            store.close().await;
        }
        return Err(e);
    }
    Ok(node)
}

/// The apps' OpenAPI documents, as the gateway serves them (`/api/NAME/openapi.json`), for the
/// authorization server's docs pages to list when they are read through the gateway.
fn app_documents(
    bound: &[(App, TcpListener)],
) -> anyhow::Result<Vec<gatehouse_server::ApiDocument>> {
    const DOCUMENTED: [App; 5] = [App::Rates, App::Fx, App::Messages, App::Orders, App::Posts];
    bound
        .iter()
        .filter(|(app, _)| DOCUMENTED.contains(app))
        .map(|(app, _)| {
            let path = format!("/api/{}/openapi.json", app.name());
            gatehouse_server::ApiDocument::new(app.name(), &path).map_err(Into::into)
        })
        .collect()
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

impl Node {
    /// Stops every part: listeners close, requests in flight finish.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Runs until `signal` resolves (or a part fails), then stops every part and waits for them.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            signal.await;
            let _ = stop.send(true);
        });
        self.wait().await
    }

    /// Waits until every part has stopped; the first failure, if any.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut servers: FuturesUnordered<Server> = self.servers.into_iter().collect();
        let mut first_error = None;
        while let Some(ended) = servers.next().await {
            let _ = self.stop.send(true);
            let result = ended
                .map_err(anyhow::Error::from)
                .and_then(|r| r.map_err(Into::into));
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "a server failed; stopping");
                first_error.get_or_insert(e);
            }
        }
        if let Some(store) = self.store {
            store.close().await;
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    }

    async fn start_auth(
        &mut self,
        mut settings: Settings,
        with_gateway: bool,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let listener = bind(settings.auth_listen).await?;
        let address = listener.local_addr()?;
        // An issuer derived from a listen address with port 0 names the port actually bound.
        let scheme = settings.scheme();
        if settings.auth.issuer == format!("{scheme}://{}", settings.auth_listen) {
            settings.auth.issuer = format!("{scheme}://{address}");
        }
        let tls = settings
            .tls
            .as_ref()
            .map(|tls| gatehouse_listen::Tls::load(tls.files()))
            .transpose()
            .context("cannot serve TLS")?;
        process::reload_tls_on_hangup(tls.iter().cloned().collect())?;
        let store = files::open_store(&settings).await?;
        self.store = Some(store.clone());
        self.addresses.store = Some(match &settings.database_url {
            Some(_) => "PostgreSQL".to_owned(),
            None => format!("SQLite in {}", settings.data_dir.display()),
        });
        let kek = files::load_kek(&settings)?;
        // The shop's own key for the tokens it keeps, the same on every node.
        let shop_sealing_key = kek.derive("gatehouse/shop/token-sealing/v1");
        let with_gateway = with_gateway && settings.gateway.enabled;
        // The apps run behind the gateway, so only with it.
        let app_listeners = match with_gateway && settings.apps.enabled {
            true => apps::bind(settings.apps.ports_from).await?,
            false => Vec::new(),
        };
        let gateway_listener = match with_gateway {
            true => Some(bind(settings.gateway.listen).await?),
            false => None,
        };
        let service = AuthService::start(settings.auth.clone(), Arc::new(store.clone()), kek)
            .await
            .context("cannot start the authorization server")?;
        // Before the first request: nobody may sign up under the administrator's name first.
        files::bootstrap_admin(&service).await?;
        let server_settings = ServerSettings {
            rate_limits: settings.rate_limits.clone(),
            api_documents: app_documents(&app_listeners)?,
            connections: self.connections.clone(),
            metrics: settings.metrics.on_public_listeners(),
            tls: tls.clone(),
            ..ServerSettings::default()
        };
        let server = gatehouse_server::start(
            listener,
            server_settings,
            Arc::new(service),
            stopped(stopping.clone()),
        )?;
        self.servers.push(server.task);
        self.addresses.auth = Some(address);
        self.addresses.issuer = Some(settings.auth.issuer.clone());

        let Some(gateway_listener) = gateway_listener else {
            return Ok(());
        };
        let mut placeholders = apps::placeholders(&app_listeners)?;
        // `{auth}` in the route file: the authorization server (its docs pass the gateway).
        // A server on every interface is dialled on loopback of the same family.
        let dialled = match address.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, address.port()))
            }
            ip if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
            }
            _ => address,
        };
        placeholders.push(("auth".to_owned(), dialled.to_string()));
        let gateway = gateway::beside_auth(&settings, &server.service, placeholders).await?;
        if !app_listeners.is_empty() {
            let db = gatehouse_apps::Db::new(store.pool().clone());
            let mut app_settings = settings.apps.app_settings();
            app_settings.shop = apps::shop_beside_auth(
                &server.service,
                &app_settings.shop,
                gateway_listener.local_addr()?,
                shop_sealing_key,
                settings.tls.as_ref(),
            )
            .await?;
            let served = apps::serve(
                app_listeners,
                &db,
                gateway.verifier(),
                &app_settings,
                &self.connections,
                stopping.clone(),
            )
            .await?;
            for (app, address, server) in served {
                self.addresses.apps.insert(app.name().to_owned(), address);
                self.servers.push(server);
            }
        }
        self.addresses.gateway = Some(gateway_listener.local_addr()?);
        self.servers.push(tokio::spawn(gateway.serve(
            gateway_listener,
            self.connections.clone(),
            tls,
            stopped(stopping),
        )));
        Ok(())
    }

    /// The process's Prometheus figures on a listener of their own. It has a small budget of
    /// connections apart from the process's, so a scrape is answered while the public listeners
    /// are full.
    fn serve_metrics(
        &mut self,
        listener: TcpListener,
        metrics: &MetricsSettings,
        limits: gatehouse_listen::ListenerLimits,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        const METRICS_CONNECTIONS: u64 = 32;
        self.addresses.metrics = Some(listener.local_addr()?);
        let router = gatehouse_listen::metrics_router(
            gatehouse_server::install_metrics(),
            gatehouse_listen::MetricsAccess::dedicated(metrics.token.clone()),
        );
        let connections = gatehouse_listen::Connections::new(gatehouse_listen::ListenerLimits {
            max_connections: METRICS_CONNECTIONS,
            max_connections_per_ip: METRICS_CONNECTIONS,
            ..limits
        });
        self.servers.push(tokio::spawn(gatehouse_listen::serve(
            listener,
            "metrics",
            router,
            connections,
            stopped(stopping),
        )));
        Ok(())
    }

    async fn start_gateway_alone(
        &mut self,
        file: PathBuf,
        listen: Option<SocketAddr>,
        metrics: &MetricsSettings,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let alone = gateway::read_alone_settings(&file)?;
        let listener = bind(listen.unwrap_or(alone.section.listen)).await?;
        let gateway = gateway::connect(
            &alone.section,
            &alone.issuer,
            alone.rules,
            Some(file),
            Vec::new(),
            alone.feed,
            metrics.on_public_listeners(),
        )
        .await?;
        gateway::reload_on_hangup(gateway.clone())?;
        let tls = alone
            .section
            .tls
            .clone()
            .map(gatehouse_listen::Tls::load)
            .transpose()
            .context("cannot serve TLS")?;
        process::reload_tls_on_hangup(tls.iter().cloned().collect())?;
        self.addresses.gateway = Some(listener.local_addr()?);
        self.addresses.issuer = Some(alone.issuer);
        self.servers.push(tokio::spawn(gateway.serve(
            listener,
            self.connections.clone(),
            tls,
            stopped(stopping),
        )));
        Ok(())
    }

    async fn start_app_alone(
        &mut self,
        app: App,
        listen: SocketAddr,
        settings: Settings,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // SIGHUP reloads nothing here, but must not stop the app (its default action).
        process::reload_tls_on_hangup(Vec::new())?;
        // Missing credentials are told before anything is opened or reached.
        let mut app_settings = settings.apps.app_settings();
        if app == App::Shop {
            app_settings.shop = apps::shop_alone(&app_settings.shop)?;
        }
        let store = files::open_store(&settings).await?;
        self.store = Some(store.clone());
        let verifier = apps::alone_verifier(&settings).await?;
        let listener = apps::bind_one(app, listen).await?;
        let db = gatehouse_apps::Db::new(store.pool().clone());
        let served = apps::serve(
            vec![(app, listener)],
            &db,
            &verifier,
            &app_settings,
            &self.connections,
            stopping,
        )
        .await?;
        for (app, address, server) in served {
            self.addresses.apps.insert(app.name().to_owned(), address);
            self.servers.push(server);
        }
        self.addresses.issuer = Some(settings.auth.issuer);
        Ok(())
    }
}
