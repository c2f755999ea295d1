//! The `herald` binary: `herald server` runs the Redis-protocol pub/sub server.
//!
//! Flags are named like redis-server's options; a TOML file (`--config`) may hold the
//! same keys, and flags given on the command line win. Bad input exits with code 2 and
//! a message naming the problem; failure to start (port in use) exits with code 1.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_server::{Server, ServerConfig};
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
    Server(ServerArgs),
    /// Load-test any RESP pub/sub server (Herald, Redis, Valkey).
    Bench(herald_bench::BenchArgs),
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
}

impl ServerArgs {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::from_toml_file(path)?,
            None => ServerConfig::default(),
        };
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
        config.validate()?;
        Ok(config)
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
        .init();
    match cli.command {
        Command::Bench(args) => herald_bench::main(args),
        Command::Server(args) => {
            let config = match args.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("herald: {err:#}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match run_server(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("herald: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_server(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal();
        let server = Server::bind(&config).await?;
        server.run(shutdown).await;
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
