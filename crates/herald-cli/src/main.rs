//! The `herald` binary: `herald server` runs the Redis-protocol pub/sub server and, beside
//! it on one engine, the HTTP gateway for browsers ([`gateway`]); `herald token` mints a
//! gateway token for development ([`token`]); `herald bench` load-tests a server;
//! `herald check-aof` checks (and repairs) an append-only file.
//!
//! Flags are named like redis-server's options; a TOML file (`--config`) may hold the
//! same keys, and flags given on the command line win. Bad input exits with code 2 and
//! a message naming the problem; failure to start (port in use) exits with code 1.

#[cfg(not(target_env = "msvc"))]
mod allocator;
mod gateway;
mod token;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_server::config::parse_yes_no;
use herald_server::{Server, ServerConfig};

mod check_aof;
use tracing_subscriber::EnvFilter;

/// Herald: a Redis-compatible pub/sub server.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (RESP2/RESP3 on --bind:--port).
    Server(Box<ServerArgs>),
    /// Load-test any RESP pub/sub server (Herald, Redis, Valkey).
    Bench(herald_bench::BenchArgs),
    /// Check an append-only file (and repair a damaged one with --fix).
    CheckAof(check_aof::CheckAofArgs),
    /// Mint a gateway token (JWT) for development.
    Token(token::TokenArgs),
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// TOML configuration file; its keys are these flags' names (`port = 6380`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Addresses to listen on (repeat the flag or separate with spaces). Default 127.0.0.1.
    #[arg(long, value_name = "ADDR", num_args = 1.., value_delimiter = ' ')]
    bind: Vec<IpAddr>,
    /// TCP port. Default 6379; 0 picks a free port.
    #[arg(long)]
    port: Option<u16>,
    /// Require clients to AUTH with this password.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "HERALD_REQUIREPASS",
        hide_env_values = true
    )]
    requirepass: Option<String>,
    /// Most clients connected at once (default 10000).
    #[arg(long)]
    maxclients: Option<usize>,
    /// Largest bulk string a client may send (default 512mb).
    #[arg(long, value_name = "SIZE")]
    proto_max_bulk_len: Option<String>,
    /// Most unparsed input buffered per client (default 1gb).
    #[arg(long, value_name = "SIZE")]
    client_query_buffer_limit: Option<String>,
    /// Output limits per class, e.g. "pubsub 32mb 8mb 60" (Redis syntax).
    #[arg(long, value_name = "LIMITS")]
    client_output_buffer_limit: Option<String>,
    /// Log writes to an append-only file and load it at start: yes or no (default no).
    #[arg(long, value_name = "yes|no")]
    appendonly: Option<String>,
    /// Directory of the append-only file (default: the working directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Name of the append-only file in --dir (default appendonly.aof).
    #[arg(long, value_name = "NAME")]
    appendfilename: Option<String>,
    /// When writes reach the disk: always, everysec (default) or no.
    #[arg(long, value_name = "POLICY")]
    appendfsync: Option<String>,
    /// Load a file whose last record a crash cut short, dropping it: yes (default) or no.
    #[arg(long, value_name = "yes|no")]
    aof_load_truncated: Option<String>,
    /// Rewrite the file when it grew by this many percent since the last rewrite (default 100; 0 disables).
    #[arg(long, value_name = "PERCENT")]
    auto_aof_rewrite_percentage: Option<u64>,
    /// ... and is at least this big (default 64mb).
    #[arg(long, value_name = "SIZE")]
    auto_aof_rewrite_min_size: Option<String>,
    /// Worker threads serving clients (default: one per CPU the process may run on but
    /// one, at least one).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    gateway: gateway::GatewayArgs,
}

impl ServerArgs {
    fn into_config(self) -> anyhow::Result<(ServerConfig, Option<herald_gateway::GatewayConfig>)> {
        let (mut config, gateway_file) = match &self.config {
            Some(path) => gateway::split_config_file(path)?,
            None => (ServerConfig::default(), gateway::GatewayArgs::default()),
        };
        let gateway = self.gateway.over(gateway_file).into_config()?;
        if !self.bind.is_empty() {
            config.bind = self.bind;
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if self.requirepass.is_some() {
            config.requirepass = self.requirepass;
        }
        if let Some(maxclients) = self.maxclients {
            config.maxclients = maxclients;
        }
        if let Some(value) = self.proto_max_bulk_len {
            config.proto_max_bulk_len = value;
        }
        if let Some(value) = self.client_query_buffer_limit {
            config.client_query_buffer_limit = value;
        }
        if let Some(value) = self.client_output_buffer_limit {
            config.client_output_buffer_limit = value;
        }
        if let Some(value) = self.appendonly {
            config.appendonly = parse_yes_no(&value).context("--appendonly")?;
        }
        if let Some(value) = self.dir {
            config.dir = value;
        }
        if let Some(value) = self.appendfilename {
            config.appendfilename = value;
        }
        if let Some(value) = self.appendfsync {
            config.appendfsync = value;
        }
        if let Some(value) = self.aof_load_truncated {
            config.aof_load_truncated = parse_yes_no(&value).context("--aof-load-truncated")?;
        }
        if let Some(value) = self.auto_aof_rewrite_percentage {
            config.auto_aof_rewrite_percentage = value;
        }
        if let Some(value) = self.auto_aof_rewrite_min_size {
            config.auto_aof_rewrite_min_size = value;
        }
        if self.threads.is_some() {
            config.threads = self.threads;
        }
        config.validate()?;
        Ok((config, gateway))
    }
}

/// Exit code for bad command-line or configuration input.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A failed log write must not become a panic: by default the subscriber reports
        // it with eprintln!, which panics when stderr is gone (a closed pipe), and that
        // would take down whichever request was logging.
        .log_internal_errors(false)
        .init();
    #[cfg(not(target_env = "msvc"))]
    allocator::install();
    match cli.command {
        Command::Bench(args) => herald_bench::main(args),
        Command::CheckAof(args) => check_aof::main(args),
        Command::Token(args) => match token::mint(args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("herald: {err:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Server(args) => {
            let (config, gateway) = match args.into_config() {
                Ok(configs) => configs,
                Err(err) => {
                    eprintln!("herald: {err:#}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match run_server(config, gateway) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("herald: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_server(
    config: ServerConfig,
    gateway: Option<herald_gateway::GatewayConfig>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            config
                .threads
                .unwrap_or_else(herald_server::config::default_worker_threads),
        )
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Signal handlers first: a SIGTERM right after "ready" must stop the server.
        let shutdown = shutdown_signal();
        let engine = Arc::new(herald_engine::Engine::new());
        let server = Server::bind_with_engine(&config, Arc::clone(&engine)).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        // A signal, or a client's SHUTDOWN (which stops the RESP server itself), stops
        // the gateway too.
        let requested = server.shared().shutdown_requested();
        let signal = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = requested => {}
                }
                stop.cancel();
            }
        };
        tokio::spawn(signal);
        let shared = Arc::clone(server.shared());
        let listening = server.local_addrs().to_vec();
        // The RESP server runs first: the gateway's notification history is a client of it.
        let resp = tokio::spawn(server.run(stop.clone().cancelled_owned()));
        if let Some(gateway_config) = gateway {
            let notifications = gateway::notification_service(&listening, &shared).await;
            let counters = Arc::new(gateway::RespCounters(Arc::clone(&shared)));
            let gateway_config = gateway::wire(gateway_config, &shared, notifications);
            let bound = herald_gateway::Gateway::bind(gateway_config, engine, Some(counters)).await;
            match bound {
                Ok(gateway) => gateway.run(stop.clone().cancelled_owned()).await,
                Err(err) => {
                    stop.cancel();
                    let _ = resp.await;
                    return Err(err.into());
                }
            }
        }
        resp.await.context("the RESP server task failed")?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
/// A future that completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: the server logs "ready" before it awaits
/// the future, and a signal sent right after that line must stop it cleanly instead of
/// killing it with the default action. Must be called inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => tracing::info!("received SIGINT"),
                        _ = terminate.recv() => tracing::info!("received SIGTERM"),
                    }
                }
                (Ok(mut interrupt), Err(err)) => {
                    tracing::warn!(%err, "cannot listen for SIGTERM; only SIGINT stops the server");
                    interrupt.recv().await;
                }
                (Err(err), _) => {
                    tracing::warn!(%err, "cannot listen for SIGINT; falling back to ctrl_c");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
