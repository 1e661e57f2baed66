//! The `larder` command line: Feast's CLI verbs over Larder's library core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use larder_registry::RegistryDoc;
use larder_server::api::{self, ApiConfig};
use larder_server::inspect::{self, ObjectKind};
use larder_server::materialize::Progress;
use larder_server::serving::RequestLimits;
use larder_server::time::parse_time;
use larder_server::{exporter, handoff, FeatureStore, MaterializeOutcome};

/// Larder: a fast, Feast-compatible feature store.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about)]
struct Cli {
    /// Run as if started in DIR (the feature repo).
    #[arg(short = 'c', long = "chdir", global = true, value_name = "DIR", env = "LARDER_REPO")]
    chdir: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, global = true, default_value = "info", env = "LARDER_LOG")]
    log_level: String,
    /// Log format: `text`, or `json` (one object per line, for log shippers).
    #[arg(long, global = true, default_value = "text", env = "LARDER_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the repo's definitions and register them (a new registry version).
    Apply {
        /// Read the registry document from this JSON file instead of the Python files.
        #[arg(long, value_name = "FILE")]
        definitions: Option<PathBuf>,
    },
    /// Write a new feature repo NAME (definitions, feature_store.yaml, data of the last 15 days).
    #[command(
        after_help = "Example:\n  larder init demo && cd demo && larder apply && larder materialize-incremental now && larder serve"
    )]
    Init {
        /// Project name, and the directory to create.
        name: String,
        /// Template: local (the embedded online store, Parquet files offline).
        #[arg(short = 't', long, default_value = "local")]
        template: String,
    },
    /// Check the repo's definitions as `apply` does, without applying them.
    Validate {
        /// Read the registry document from this JSON file instead of the Python files.
        #[arg(long, value_name = "FILE")]
        definitions: Option<PathBuf>,
    },
    /// Show what `apply` would create, update and delete.
    Plan {
        /// Read the registry document from this JSON file instead of the Python files.
        #[arg(long, value_name = "FILE")]
        definitions: Option<PathBuf>,
    },
    /// Load the newest values with event time in [START, END] into the online store.
    Materialize {
        /// Start (ISO 8601; without offset means UTC).
        start: String,
        /// End (inclusive).
        end: String,
        /// Only these feature views (repeatable).
        #[arg(short = 'v', long = "views")]
        views: Vec<String>,
    },
    /// Materialize from where the last run ended (or END - ttl) up to END.
    MaterializeIncremental {
        /// End (ISO 8601).
        end: String,
        /// Only these feature views (repeatable).
        #[arg(short = 'v', long = "views")]
        views: Vec<String>,
    },
    /// Serve the HTTP feature server.
    #[command(
        after_help = "Every flag can also be set from the environment (shown as [env: ...]), as in a container:\n  \
        LARDER_REPO=/repo LARDER_HOST=0.0.0.0 LARDER_PORT=6566 larder serve"
    )]
    Serve {
        /// Address to listen on.
        #[arg(short = 'H', long, default_value = "127.0.0.1", env = "LARDER_HOST")]
        host: String,
        /// Port to listen on.
        #[arg(short, long, default_value_t = 6566, env = "LARDER_PORT")]
        port: u16,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = 8 * 1024 * 1024, env = "LARDER_MAX_BODY_BYTES")]
        max_body_bytes: usize,
        /// Port of the Arrow Flight service (0: off).
        #[arg(long, default_value_t = 8815, env = "LARDER_FLIGHT_PORT")]
        flight_port: u16,
        /// Largest Arrow request body (entity dataframe) accepted, in bytes.
        #[arg(long, default_value_t = 1024 * 1024 * 1024, env = "LARDER_MAX_ARROW_BODY_BYTES")]
        max_arrow_body_bytes: usize,
        /// Most entity rows per online request.
        #[arg(long, default_value_t = 10_000, env = "LARDER_MAX_ENTITIES")]
        max_entities: usize,
        /// TLS certificate chain (PEM) for the HTTP and Flight listeners (with --key).
        #[arg(long, requires = "key", env = "LARDER_TLS_CERT")]
        cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "cert", env = "LARDER_TLS_KEY")]
        key: Option<PathBuf>,
        /// Most features per online request.
        #[arg(long, default_value_t = 1_000, env = "LARDER_MAX_FEATURES")]
        max_features: usize,
        /// Requests handled at once; more get 503 at once (load shedding, no queue).
        #[arg(long, default_value_t = 1024, env = "LARDER_MAX_CONCURRENT_REQUESTS")]
        max_concurrent_requests: usize,
        /// Longest a request may take, in seconds, before it is answered 504.
        #[arg(long, default_value_t = 60, env = "LARDER_REQUEST_TIMEOUT_SECS")]
        request_timeout_secs: u64,
        /// Longest wait for the next part of a request body, in seconds (then 408).
        #[arg(long, default_value_t = 10, env = "LARDER_BODY_TIMEOUT_SECS")]
        body_timeout_secs: u64,
        /// Longest a request head may take to arrive, in seconds; also closes keep-alive
        /// connections idle for this long between requests.
        #[arg(long, default_value_t = 10, env = "LARDER_HEADER_READ_TIMEOUT_SECS")]
        header_read_timeout_secs: u64,
        /// Close a connection that moves no bytes for this many seconds while no request is
        /// in flight.
        #[arg(long, default_value_t = 60, env = "LARDER_IDLE_TIMEOUT_SECS")]
        idle_timeout_secs: u64,
        /// Most open HTTP connections; more are closed at once (default: the open-file
        /// limit less 128).
        #[arg(long, env = "LARDER_MAX_CONNECTIONS")]
        max_connections: Option<usize>,
        /// How often to check the registry for a new apply, in seconds (default: the
        /// registry's `cache_ttl_seconds`, or 1).
        #[arg(long, env = "LARDER_REGISTRY_REFRESH_SECS")]
        registry_refresh_secs: Option<u64>,
        /// Do not consume the Kafka sources of stream feature views here (run `larder stream`
        /// elsewhere, e.g. with a Redis online store).
        #[arg(long, env = "LARDER_NO_STREAM")]
        no_stream: bool,
    },
    /// Consume the Kafka sources of every stream feature view into the online and offline
    /// stores, without serving HTTP (for a shared online store such as Redis; the embedded
    /// RocksDB store is opened by one process only, so there `larder serve` consumes).
    Stream,
    /// Delete the online data of every view and the registry.
    Teardown,
    /// Copy the project's definitions and materialization record from a Feast registry file
    /// (`registry.db`) into this repo's Larder registry, as one apply. Without it, Larder
    /// serves a Feast registry found at `registry:` read-only, as Feast left it.
    ImportFeast {
        /// The Feast registry file.
        registry: PathBuf,
    },
    /// Inspect the registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// List the entities, or describe one (Feast's `feast entities`).
    Entities {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// List the feature views, or describe one (Feast's `feast feature-views`).
    FeatureViews {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// List the on-demand feature views, or describe one.
    OnDemandFeatureViews {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// List the feature services, or describe one.
    FeatureServices {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// List the data sources, or describe one.
    DataSources {
        #[command(subcommand)]
        command: ObjectCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ObjectCommand {
    /// A table of every object of the kind: name and a summary.
    List,
    /// One object in full, as YAML.
    Describe {
        /// The object's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Print the registered definitions (the current version, or --version N) as JSON.
    Dump {
        /// A version from the history.
        #[arg(long)]
        version: Option<u64>,
    },
    /// List the applied versions: number, time, user and changes.
    History,
    /// What changed from version FROM to version TO, as `plan` prints it.
    Diff {
        /// The earlier version.
        from: u64,
        /// The later version.
        to: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: --log-level `{}` is not a log filter ({e}); e.g. info, debug, info,larder_server=debug",
                cli.log_level
            );
            std::process::exit(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().with_current_span(true).init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the CLI reads the definitions before any serving"
)]
fn load_definitions(store: &FeatureStore, file: Option<PathBuf>) -> Result<RegistryDoc> {
    for note in &store.config().notes {
        eprintln!("note: {note}");
    }
    let repo = &store.config().repo_dir;
    if let Some(f) = file {
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        return Ok(exporter::read_doc(&bytes, &f.display().to_string())?);
    }
    if !exporter::has_python_files(repo) {
        bail!(
            "{} has no Python definition files (*.py); pass --definitions FILE.json",
            repo.display()
        );
    }
    Ok(exporter::export(repo)?)
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start_view(&self, view: &str) {
        self.0.reset();
        self.0.set_message(view.to_string());
    }
    fn rows_written(&self, rows: u64) {
        self.0.inc(rows);
    }
    fn finish_view(&self, _view: &str, _rows: u64, _seconds: f64) {
        self.0.finish_and_clear();
    }
}

fn report(outcomes: &[MaterializeOutcome]) {
    if outcomes.is_empty() {
        println!("Nothing to materialize.");
    }
    for o in outcomes {
        let rate = if o.seconds > 0.0 {
            o.rows as f64 / o.seconds
        } else {
            0.0
        };
        println!(
            "{}: {} rows from {} to {} in {:.2} s ({:.0} rows/s)",
            o.view,
            o.rows,
            o.start.to_rfc3339(),
            o.end.to_rfc3339(),
            o.seconds,
            rate
        );
        if o.expired > 0 {
            println!(
                "  {} of these {} keys are already older than the view's ttl: online reads answer them \
                 OUTSIDE_MAX_AGE with a null (`online_ttl: ignore` in feature_store.yaml serves them, as \
                 Feast's Python server does)",
                o.expired, o.rows
            );
        }
    }
}

fn progress_bar() -> Bar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {human_pos} rows ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Bar(bar)
}

/// The server to hand a materialization to: the one advertised in the embedded store's
/// directory when another process holds the store (see [`handoff`]), with the token to call it
/// with. `None`: this process opened the store (or the store is not embedded) and runs it.
fn held_by_server(store: &FeatureStore) -> Result<Option<(handoff::ServerAddress, Option<String>)>> {
    let server = if let larder_server::config::OnlineStoreConfig::Remote(remote) = &store.config().online_store {
        // Feast's remote online store: the repo is the client of the server that holds the data.
        println!(
            "The online store is the feature server at {}: the materialization runs there.",
            remote.path
        );
        handoff::ServerAddress {
            pid: 0,
            project: store.project().to_string(),
            url: remote.path.trim_end_matches('/').to_string(),
        }
    } else {
        let Some(dir) = store.config().embedded_store_dir() else {
            return Ok(None);
        };
        let Err(e) = store.online() else {
            return Ok(None);
        };
        let Some(server) = handoff::find(&dir).filter(|s| s.project == store.project()) else {
            return Err(e.into());
        };
        println!(
            "The online store is held by the server at {} (pid {}): the materialization runs there.",
            server.url, server.pid
        );
        server
    };
    let token = match std::env::var("LARDER_TOKEN") {
        Ok(t) if !t.is_empty() => Some(t),
        _ => match &store.config().auth {
            Some(auth) => larder_server::auth::admin_token(auth, &store.config().repo_dir, store.project())
                .map_err(anyhow::Error::msg)?,
            None => None,
        },
    };
    Ok(Some((server, token)))
}

/// A time given on the command line: ISO 8601, or `now`.
fn cli_time(text: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if text.trim().eq_ignore_ascii_case("now") {
        return Ok(chrono::Utc::now());
    }
    parse_time(text).map_err(anyhow::Error::msg).context(what.to_string())
}

async fn run(cli: Cli) -> Result<()> {
    let repo = cli.chdir.clone().unwrap_or_else(|| PathBuf::from("."));
    if let Command::Init { name, template } = &cli.command {
        let dir = repo.join(name);
        larder_server::init::write_repo(&dir, name, template, chrono::Utc::now())?;
        println!(
            "Created a new Larder repository in {}.\nNext: cd {} && larder apply && larder materialize-incremental now \
             && larder serve",
            dir.display(),
            dir.display()
        );
        return Ok(());
    }
    let store = FeatureStore::open(&repo)?;
    match cli.command {
        // Written above, before a repo exists to open.
        Command::Init { .. } => {}
        Command::Validate { definitions } => {
            let doc = load_definitions(&store, definitions)?;
            let counts = format!(
                "{} entities, {} data sources, {} feature views, {} on-demand feature views, {} feature services",
                doc.entities.len(),
                doc.data_sources.len(),
                doc.feature_views.len(),
                doc.on_demand_feature_views.len(),
                doc.feature_services.len()
            );
            let outcome = store.plan(doc).await?;
            println!("The definitions are valid: {counts}.");
            if outcome.plan.is_empty() {
                println!("Applying them would change nothing.");
            } else {
                print!("Applying them would:\n{}", outcome.plan);
            }
        }
        Command::Plan { definitions } => {
            let doc = load_definitions(&store, definitions)?;
            let outcome = store.plan(doc).await?;
            print!("{}", outcome.plan);
            if outcome.plan.is_empty() {
                println!();
            }
        }
        Command::Apply { definitions } => {
            let doc = load_definitions(&store, definitions)?;
            let outcome = store.apply(doc, &user()).await?;
            print!("{}", outcome.plan);
            if outcome.plan.is_empty() {
                println!();
            }
            if let (false, Some(s)) = (outcome.plan.is_empty(), &outcome.state) {
                println!("Registry version {} applied to project {}.", s.version, store.project());
            }
            for (source, file) in &outcome.created_sources {
                println!(
                    "Created {file}: source {source} had no data yet; an empty Parquet file with the columns its \
                     definitions declare (the stream's or pushes' offline rows go there)."
                );
            }
        }
        Command::ImportFeast { registry } => {
            let outcome = store.import_feast(&registry).await?;
            print!("{}", outcome.plan);
            match (&outcome.state, outcome.plan.is_empty()) {
                (Some(s), false) => println!(
                    "Imported {} into registry version {} of project {}.",
                    registry.display(),
                    s.version,
                    store.project()
                ),
                _ => println!("\nNothing to import: the registry already holds these definitions."),
            }
        }
        Command::Materialize { start, end, views } => {
            let start = cli_time(&start, "START")?;
            let end = cli_time(&end, "END")?;
            println!(
                "Materializing project {} from {} to {}:",
                store.project(),
                start.to_rfc3339(),
                end.to_rfc3339()
            );
            let bar = progress_bar();
            let outcomes = match held_by_server(&store)? {
                Some((server, token)) => {
                    let call = handoff::MaterializeCall::Range { start, end };
                    handoff::materialize(&server, token.as_deref(), &call, &views, &bar).await
                }
                None => store.materialize(start, end, &views, &bar).await,
            };
            bar.0.finish_and_clear();
            report(&outcomes?);
        }
        Command::MaterializeIncremental { end, views } => {
            let end = cli_time(&end, "END")?;
            println!(
                "Materializing project {} incrementally up to {}:",
                store.project(),
                end.to_rfc3339()
            );
            let bar = progress_bar();
            let outcomes = match held_by_server(&store)? {
                Some((server, token)) => {
                    let call = handoff::MaterializeCall::Incremental { end };
                    handoff::materialize(&server, token.as_deref(), &call, &views, &bar).await
                }
                None => store.materialize_incremental(end, &views, &bar).await,
            };
            bar.0.finish_and_clear();
            report(&outcomes?);
        }
        Command::Serve {
            host,
            port,
            max_body_bytes,
            max_arrow_body_bytes,
            flight_port,
            max_entities,
            max_features,
            cert,
            key,
            max_concurrent_requests,
            request_timeout_secs,
            body_timeout_secs,
            header_read_timeout_secs,
            idle_timeout_secs,
            max_connections,
            registry_refresh_secs,
            no_stream,
        } => {
            larder_server::metrics::install();
            let limits = RequestLimits {
                max_entities,
                max_features,
            };
            let store = Arc::new(store.with_limits(limits));
            if let Err(e) = store.refresh().await {
                tracing::warn!(error = %e, "Serving without a registry; /health answers 503 until `larder apply`.");
            }
            store.online()?;
            let refresh = registry_refresh_secs.unwrap_or(store.config().registry.cache_ttl_seconds);
            api::spawn_registry_refresh(Arc::clone(&store), Duration::from_secs(refresh.max(1)));
            api::spawn_timer_keeper();
            let app = api::router(
                Arc::clone(&store),
                &ApiConfig {
                    max_body_bytes,
                    max_arrow_body_bytes,
                    max_concurrent_requests,
                    request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
                    body_timeout: Duration::from_secs(body_timeout_secs.max(1)),
                },
            );
            let conn_limits = api::listen::ConnectionLimits {
                header_read_timeout: Duration::from_secs(header_read_timeout_secs.max(1)),
                idle_timeout: Duration::from_secs(idle_timeout_secs.max(1)),
                max_connections: max_connections.unwrap_or_else(api::listen::default_max_connections),
            };
            let addr: SocketAddr = format!("{host}:{port}")
                .parse()
                .with_context(|| format!("bad address {host}:{port}"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            let tls = match (&cert, &key) {
                (Some(c), Some(k)) => Some((
                    larder_server::tls::server_config(c, k, &[b"http/1.1"]).map_err(anyhow::Error::msg)?,
                    larder_server::tls::server_config(c, k, &[b"h2"]).map_err(anyhow::Error::msg)?,
                )),
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            // CLI materializations beside this server are handed to it (see `handoff`).
            let _advertised = store.config().embedded_store_dir().and_then(|dir| {
                let address = handoff::ServerAddress {
                    pid: std::process::id(),
                    project: store.project().to_string(),
                    url: handoff::local_url(scheme, local),
                };
                handoff::advertise(&dir, &address)
                    .map_err(|e| tracing::warn!(error = %e, "The server's address is not advertised to the CLI."))
                    .ok()
            });
            println!(
                "Larder serving project {} on {scheme}://{local} (docs at {scheme}://{local}/docs)",
                store.project()
            );
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            let streams = (!no_stream).then(|| {
                larder_server::stream::worker::spawn_all(
                    Arc::clone(&store),
                    Duration::from_secs(refresh.max(1)),
                    stop_rx.clone(),
                )
            });
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            let flight = if flight_port > 0 {
                let faddr: SocketAddr = format!("{host}:{flight_port}")
                    .parse()
                    .with_context(|| format!("bad address {host}:{flight_port}"))?;
                let flistener = tokio::net::TcpListener::bind(faddr).await.with_context(|| {
                    format!("cannot listen on {faddr} (Arrow Flight; --flight-port 0 turns it off)")
                })?;
                let svc = larder_server::flight::service(Arc::clone(&store));
                // Feast's gRPC ServingService shares the Flight port (gRPC routes by path).
                let serving = larder_server::grpc::ServingServer::new(Arc::clone(&store));
                // So does Feast's RegistryServer (clients with `registry_type: remote`).
                let registry = larder_server::grpc::RegistryServer::new(Arc::clone(&store));
                let rx = stop_rx.clone();
                match &tls {
                    Some((_, flight_tls)) => {
                        println!("Arrow Flight on grpc+tls://{}", flistener.local_addr()?);
                        let conns = larder_server::tls::accept_loop(flistener, Arc::clone(flight_tls));
                        let incoming = futures::stream::unfold(conns, |mut c| async move {
                            c.recv().await.map(|(io, _)| (Ok::<_, std::io::Error>(io), c))
                        });
                        Some(tokio::spawn(async move {
                            tonic::transport::Server::builder()
                                .add_service(svc)
                                .add_service(serving)
                                .add_service(registry)
                                .serve_with_incoming_shutdown(incoming, stopped(rx))
                                .await
                        }))
                    }
                    None => {
                        println!("Arrow Flight on grpc://{}", flistener.local_addr()?);
                        // No Nagle delay: a multi-segment gRPC answer would otherwise wait for the
                        // client's delayed ACK (40 ms).
                        let incoming = tonic::transport::server::TcpIncoming::from(flistener).with_nodelay(Some(true));
                        Some(tokio::spawn(async move {
                            tonic::transport::Server::builder()
                                .add_service(svc)
                                .add_service(serving)
                                .add_service(registry)
                                .serve_with_incoming_shutdown(incoming, stopped(rx))
                                .await
                        }))
                    }
                }
            } else {
                None
            };
            match tls {
                Some((http_tls, _)) => {
                    let listener = larder_server::tls::TlsListener::new(listener, http_tls)?;
                    api::listen::serve(listener, app, conn_limits, stopped(stop_rx)).await?;
                }
                None => {
                    // Small responses: send them at once (no Nagle delay), as uvicorn does for Feast.
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    api::listen::serve(listener, app, conn_limits, stopped(stop_rx)).await?;
                }
            }
            if let Some(f) = flight {
                f.await.context("Flight task")?.context("Arrow Flight server")?;
            }
            if let Some(s) = streams {
                s.await.context("stream workers")?;
            }
            // Served features logged since the last write are written before exiting.
            store.flush_feature_log().await;
            tracing::info!("Server stopped.");
        }
        Command::Stream => {
            larder_server::metrics::install();
            let store = Arc::new(store);
            if let Err(e) = store.refresh().await {
                tracing::warn!(error = %e, "No registry yet; stream workers start after `larder apply`.");
            }
            store.online()?;
            let refresh = store.config().registry.cache_ttl_seconds.max(1);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let workers =
                larder_server::stream::worker::spawn_all(Arc::clone(&store), Duration::from_secs(refresh), stop_rx);
            println!("Larder stream workers running for project {}", store.project());
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            workers.await.context("stream workers")?;
            tracing::info!("Stream workers stopped.");
        }
        Command::Teardown => {
            let removed = store.teardown().await?;
            println!(
                "Removed the online data of {} feature views and the registry of project {}.",
                removed.len(),
                store.project()
            );
        }
        Command::Registry {
            command: RegistryCommand::Dump { version },
        } => {
            let doc = match version {
                Some(v) => store.on_registry(move |r| r.version(v)).await?.1,
                None => match store.on_registry(|r| r.load()).await? {
                    Some(s) => s.doc,
                    None => bail!("the registry is empty: run `larder apply` first"),
                },
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Command::Entities { command } => objects(&store, ObjectKind::Entities, command).await?,
        Command::FeatureViews { command } => objects(&store, ObjectKind::FeatureViews, command).await?,
        Command::OnDemandFeatureViews { command } => objects(&store, ObjectKind::OnDemandFeatureViews, command).await?,
        Command::FeatureServices { command } => objects(&store, ObjectKind::FeatureServices, command).await?,
        Command::DataSources { command } => objects(&store, ObjectKind::DataSources, command).await?,
        Command::Registry {
            command: RegistryCommand::Diff { from, to },
        } => {
            let old = store.on_registry(move |r| r.version(from)).await?.1;
            let new = store.on_registry(move |r| r.version(to)).await?.1;
            let plan = larder_registry::diff(Some(&old), &new);
            print!("{plan}");
            if plan.is_empty() {
                println!();
            }
        }
        Command::Registry {
            command: RegistryCommand::History,
        } => {
            let history = store.on_registry(|r| r.history()).await?;
            if history.is_empty() {
                println!("No versions yet.");
            }
            for h in history {
                println!(
                    "version {}  {}  by {}",
                    h.version,
                    h.applied_at.to_rfc3339(),
                    h.applied_by
                );
                for c in &h.changes {
                    for line in c.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// `larder <kind> list|describe NAME`.
async fn objects(store: &FeatureStore, kind: ObjectKind, command: ObjectCommand) -> Result<()> {
    let Some(state) = store.on_registry(|r| r.load()).await? else {
        bail!("the registry is empty: run `larder apply` first");
    };
    match command {
        ObjectCommand::List => println!("{}", inspect::list(&state.doc, kind).render()),
        ObjectCommand::Describe { name } => print!("{}", inspect::describe(&state.doc, kind, &name)?),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
