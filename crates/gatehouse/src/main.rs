//! `gatehouse`: the command line. `serve` runs everything (authorization server, gateway, the five
//! reference apps) on the embedded store; `auth`, `gateway` and `app NAME` run one part alone
//! (several can share one PostgreSQL); `rates-client` is the reference machine client; `admin`
//! works on the store directly.

mod admin_cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gatehouse::node::{self, Addresses, NodeSpec};
use gatehouse::{config, process};
use gatehouse_apps::rates_client::RatesClientArgs;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "OAuth 2 authorization server and API gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process on the embedded SQLite store (or --database-url).
    Serve(ServerArgs),
    /// Run the authorization server alone.
    Auth(ServerArgs),
    /// Run the API gateway alone, from its route file.
    Gateway {
        /// The gateway's TOML file: a [gateway] table and [[route]] tables.
        #[arg(long, env = "GATEHOUSE_GATEWAY_CONFIG")]
        config: PathBuf,
        /// Listen address, instead of the file's [gateway] listen.
        #[arg(long, env = "GATEHOUSE_GATEWAY_LISTEN")]
        listen: Option<SocketAddr>,
        /// Where the Prometheus figures are served (`off`: nowhere but to a bearer of
        /// GATEHOUSE_METRICS_TOKEN at /_gatehouse/metrics).
        #[arg(
            long,
            env = "GATEHOUSE_METRICS_LISTEN",
            default_value = config::DEFAULT_METRICS_LISTEN
        )]
        metrics_listen: config::MetricsListen,
        /// Log format: text or json.
        #[arg(long, env = "GATEHOUSE_LOG_FORMAT", default_value = "text")]
        log_format: String,
    },
    /// Run one reference application alone (rates, fx, messages, orders, posts).
    App {
        /// Which app.
        name: gatehouse_apps::App,
        /// Where it listens.
        #[arg(long, default_value = "127.0.0.1:9101")]
        listen: SocketAddr,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The reference machine client: registers itself, reads the rates feed through the gateway,
    /// and serves /status and /currencies.
    RatesClient {
        /// The authorization server (issuer) to register with.
        #[arg(
            long,
            env = "GATEHOUSE_ISSUER",
            default_value = "http://127.0.0.1:8080"
        )]
        issuer: String,
        /// The gateway to read the rates through.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        gateway: String,
        /// Where its own API listens.
        #[arg(long, default_value = "127.0.0.1:8200")]
        listen: SocketAddr,
        /// Where its credentials are kept (mode 0600).
        #[arg(long, default_value = "rates-client.json")]
        credentials: PathBuf,
        /// Seconds between polls.
        #[arg(long, default_value_t = 10)]
        poll_secs: u64,
    },
    /// Check a configuration without serving: store, migrations, keys, issuer, clock, routes.
    /// Prints one line per check; exits non-zero if any failed. Changes nothing.
    Doctor {
        #[command(flatten)]
        server: ServerArgs,
        /// A gateway file (`gatehouse gateway --config`) to check as well.
        #[arg(long, env = "GATEHOUSE_GATEWAY_CONFIG")]
        gateway_config: Option<PathBuf>,
    },
    /// Probe a running node for container health checks: GET the URL, succeed on a 2xx answer.
    Healthcheck {
        /// What to GET (the auth server's /healthz, the gateway's /_gatehouse/healthz, or the
        /// metrics listener's /healthz).
        #[arg(
            env = "GATEHOUSE_HEALTHCHECK_URL",
            default_value = gatehouse::doctor::DEFAULT_HEALTHCHECK_URL
        )]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
        /// Certificates (PEM) trusted besides the system's roots for an https:// URL: a private
        /// CA's. The certificate must name the URL's host.
        #[arg(long, env = "GATEHOUSE_HEALTHCHECK_CA_FILE")]
        ca_file: Option<std::path::PathBuf>,
    },
    /// Administer users, clients and keys directly on the store.
    Admin {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
}

/// Where the data is, for commands that open the store without serving.
#[derive(Args)]
struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "GATEHOUSE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the SQLite database and key file [default: ./gatehouse-data].
    #[arg(long, env = "GATEHOUSE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// postgres://… when the servers use PostgreSQL.
    #[arg(
        long,
        env = "GATEHOUSE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and generated key file [default: ./gatehouse-data].
    #[arg(long, env = "GATEHOUSE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the authorization server [default: 127.0.0.1:8080].
    #[arg(long, env = "GATEHOUSE_AUTH_LISTEN")]
    auth_listen: Option<SocketAddr>,
    /// Issuer URL (`iss` of tokens, base of endpoint URLs) [default: http://127.0.0.1:8080].
    #[arg(long, env = "GATEHOUSE_ISSUER")]
    issuer: Option<String>,
    /// postgres://… to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, env = "GATEHOUSE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT")]
    log_format: Option<String>,
    /// Address of the gateway `serve` runs [default: 127.0.0.1:8000].
    #[arg(long, env = "GATEHOUSE_GATEWAY_LISTEN")]
    gateway_listen: Option<SocketAddr>,
    /// Route file for the gateway `serve` runs, instead of the shipped one.
    #[arg(long, env = "GATEHOUSE_GATEWAY_ROUTES")]
    gateway_routes: Option<PathBuf>,
    /// First of the five loopback ports of the reference apps under `serve` (0: any free ones)
    /// [default: 9101].
    #[arg(long, env = "GATEHOUSE_APPS_PORTS_FROM")]
    apps_ports_from: Option<u16>,
    /// Where the Prometheus figures are served, or `off` [default: 127.0.0.1:9464].
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    metrics_listen: Option<config::MetricsListen>,
}

impl ServerArgs {
    fn settings(self) -> anyhow::Result<config::Settings> {
        config::load(
            self.config.as_deref(),
            config::Overrides {
                data_dir: self.data_dir,
                auth_listen: self.auth_listen,
                database_url: self.database_url,
                log_format: self.log_format,
                issuer: self.issuer,
                gateway_listen: self.gateway_listen,
                gateway_routes: self.gateway_routes,
                apps_ports_from: self.apps_ports_from,
                metrics_listen: self.metrics_listen,
            },
        )
    }
}

/// Starts the node, says where it listens (on stdout for people, and as JSON in
/// `GATEHOUSE_READY_FILE` for programs), and runs it until SIGINT or SIGTERM.
async fn run(spec: NodeSpec, title: &str) -> anyhow::Result<()> {
    let ready_file = std::env::var("GATEHOUSE_READY_FILE")
        .ok()
        .filter(|path| !path.is_empty())
        .map(std::path::PathBuf::from);
    // A file left by an earlier run must not be read as this one's.
    if let Some(path) = &ready_file {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
        }
    }
    let mut signal = Box::pin(process::shutdown_signal()?);
    let node = tokio::select! {
        started = node::start(spec) => started?,
        () = &mut signal => {
            tracing::info!("stopped before it was ready");
            return Ok(());
        }
    };
    print_banner(title, &node.addresses);
    if let Some(path) = &ready_file {
        let written = serde_json::to_string(&node.addresses)
            .map_err(anyhow::Error::from)
            .and_then(|text| {
                gatehouse_sdk::files::replace_private_file(path, &text).with_context(|| {
                    format!("cannot write GATEHOUSE_READY_FILE {}", path.display())
                })
            });
        if let Err(e) = written {
            node.shutdown();
            let _ = node.wait().await;
            return Err(e);
        }
    }
    node.run_until(signal).await
}

fn print_banner(title: &str, addresses: &Addresses) {
    println!("{title} is running");
    if let Some(address) = addresses.auth {
        println!("  authorization server  http://{address}");
    }
    if let Some(issuer) = &addresses.issuer {
        println!("  issuer                {issuer}");
    }
    if let Some(address) = addresses.auth {
        println!("  discovery             http://{address}/.well-known/oauth-authorization-server");
        println!("  API docs              http://{address}/docs");
    }
    if let Some(address) = addresses.gateway {
        println!("  gateway               http://{address}");
        println!("  all API docs          http://{address}/docs");
    }
    for (name, address) in &addresses.apps {
        println!("  app {name:<18} http://{address}");
    }
    if let Some(address) = addresses.rates_client {
        println!("  status page           http://{address}/");
        println!("  status (JSON)         http://{address}/status");
    }
    if let Some(address) = addresses.metrics {
        println!("  metrics (Prometheus)  http://{address}/metrics");
    }
    if let Some(store) = &addresses.store {
        println!("  store                 {store}");
    }
}

// Requests allocate many small, short-lived buffers across threads; mimalloc serves those
// with less CPU than the system allocator (see BENCHMARKS.md, "CPU per request").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match args.settings() {
            Ok(settings) => {
                process::init_logging(&settings.log_format);
                run(NodeSpec::Serve(settings), "Gatehouse").await
            }
            Err(e) => Err(e),
        },
        Command::Auth(args) => match args.settings() {
            Ok(settings) => {
                process::init_logging(&settings.log_format);
                run(NodeSpec::Auth(settings), "Gatehouse").await
            }
            Err(e) => Err(e),
        },
        Command::App {
            name,
            listen,
            server,
        } => match server.settings() {
            Ok(settings) => {
                process::init_logging(&settings.log_format);
                let title = format!("Gatehouse app {}", name.name());
                run(
                    NodeSpec::App {
                        app: name,
                        listen,
                        settings,
                    },
                    &title,
                )
                .await
            }
            Err(e) => Err(e),
        },
        Command::RatesClient {
            issuer,
            gateway,
            listen,
            credentials,
            poll_secs,
        } => {
            process::init_logging("text");
            let args = RatesClientArgs {
                issuer,
                gateway,
                credentials,
                poll_every: std::time::Duration::from_secs(poll_secs.max(1)),
            };
            run(
                NodeSpec::RatesClient { args, listen },
                "Gatehouse rates client",
            )
            .await
        }
        Command::Gateway {
            config,
            listen,
            metrics_listen,
            log_format,
        } => {
            process::init_logging(&log_format);
            let mut metrics = config::MetricsSettings {
                listen: metrics_listen,
                token: None,
            };
            match metrics.read_token() {
                Ok(()) => {
                    run(
                        NodeSpec::Gateway {
                            file: config,
                            listen,
                            metrics,
                        },
                        "Gatehouse gateway",
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Command::Doctor {
            server,
            gateway_config,
        } => {
            process::init_logging_quiet();
            gatehouse::doctor::main(server.settings(), gateway_config.as_deref()).await
        }
        Command::Healthcheck {
            url,
            timeout_secs,
            ca_file,
        } => {
            let timeout = std::time::Duration::from_secs(timeout_secs);
            gatehouse::doctor::healthcheck(&url, timeout, ca_file.as_deref()).await
        }
        Command::Admin { store, command } => {
            let settings = config::load(
                store.config.as_deref(),
                config::Overrides {
                    data_dir: store.data_dir,
                    database_url: store.database_url,
                    ..config::Overrides::default()
                },
            );
            match settings {
                Ok(settings) => {
                    process::init_logging_quiet();
                    admin_cli::run(settings, command).await
                }
                Err(e) => Err(e),
            }
        }
    };
    process::flush_traces().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
