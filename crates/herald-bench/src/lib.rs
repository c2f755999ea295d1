//! `herald bench`: a load generator for any RESP pub/sub server (Herald, Redis, Valkey).
//!
//! # Layout
//! - [`resp`]: a minimal raw RESP2 client over tokio: pipelined writes, replies and
//!   pub/sub pushes parsed straight from the read buffer (the client must never be the
//!   bottleneck, so no general-purpose client library).
//! - [`scenario`]: the payload format and the shared subscriber/publisher loops, then one
//!   module per scenario: [`scenario::fanout`], [`scenario::patterns`], [`scenario::latency`],
//!   [`scenario::channels`], [`scenario::connections`].
//! - [`report`]: [`report::BenchResult`], latency percentiles from `hdrhistogram`, the
//!   human table and the one-JSON-line-per-result output.
//! - [`compare`]: `--compare ADDR`, rounds interleaved A B A B and the ratio table.
//! - [`progress`]: a progress bar on a terminal, plain lines otherwise (on stderr).
//!
//! Every network wait is bounded by `--timeout`; subscriptions are confirmed and counted
//! by the server (PUBSUB NUMSUB / NUMPAT, PUBLISH's receiver count) before any timing.

pub mod compare;
pub mod cpu;
mod error;
pub mod progress;
pub mod report;
pub mod resp;
pub mod scenario;

use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use error::BenchError;
use report::BenchResult;
pub use scenario::channels::ChannelsArgs;
pub use scenario::connections::ConnectionsArgs;
pub use scenario::fanout::FanoutArgs;
pub use scenario::latency::LatencyArgs;
pub use scenario::patterns::PatternsArgs;

/// Exit code for a run that failed: server unreachable, or messages lost or reordered.
const EXIT_FAILED: u8 = 1;
/// Exit code for arguments that make no sense together.
const EXIT_USAGE: u8 = 2;

/// `herald bench SCENARIO [OPTIONS]`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which load to generate.
    #[command(subcommand)]
    pub scenario: ScenarioArgs,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum ScenarioArgs {
    /// P publishers → one channel → S subscribers, pipelined (saturated fan-out).
    Fanout(FanoutArgs),
    /// S subscribers with K patterns each; publishes to matching and non-matching channels.
    Patterns(PatternsArgs),
    /// Open loop at a fixed --rate for --duration: end-to-end latency percentiles.
    Latency(LatencyArgs),
    /// C channels, each subscriber on a random subset of M; publishers spread over all.
    Channels(ChannelsArgs),
    /// N idle subscribers: server RSS per connection (--server-pid), one PUBLISH to all.
    Connections(ConnectionsArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Server to load (host:port).
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Also run against this server, interleaved A B A B, and print the ratios A/B.
    #[arg(long, value_name = "ADDR")]
    pub compare: Option<String>,
    /// Rounds per server with --compare.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(3..=1000))]
    pub rounds: u32,
    /// Print one JSON object per result (one per line) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Upper bound in seconds for any single network wait (connect, confirmation, reply, message).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
    /// PID of the --addr server: report its CPU time per delivery (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// PID of the --compare server, likewise.
    #[arg(long, value_name = "PID")]
    pub compare_pid: Option<u32>,
}

impl CommonArgs {
    /// `--timeout-secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl ScenarioArgs {
    /// The options shared by every scenario.
    pub fn common(&self) -> &CommonArgs {
        match self {
            ScenarioArgs::Fanout(a) => &a.common,
            ScenarioArgs::Patterns(a) => &a.common,
            ScenarioArgs::Latency(a) => &a.common,
            ScenarioArgs::Channels(a) => &a.common,
            ScenarioArgs::Connections(a) => &a.common,
        }
    }

    /// The scenario's name as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            ScenarioArgs::Fanout(_) => "fanout",
            ScenarioArgs::Patterns(_) => "patterns",
            ScenarioArgs::Latency(_) => "latency",
            ScenarioArgs::Channels(_) => "channels",
            ScenarioArgs::Connections(_) => "connections",
        }
    }

    /// PUBLISH commands one run will send (for progress).
    pub fn total_publishes(&self) -> u64 {
        match self {
            ScenarioArgs::Fanout(a) => a.total_publishes(),
            ScenarioArgs::Patterns(a) => a.total_publishes(),
            ScenarioArgs::Latency(a) => a.messages_each() * u64::from(a.publishers),
            ScenarioArgs::Channels(a) => a.total_publishes(),
            ScenarioArgs::Connections(a) => a.messages,
        }
    }

    /// Checks what clap cannot check flag by flag; a failure is [`BenchError::Usage`].
    pub fn validate(&self) -> Result<(), BenchError> {
        match self {
            ScenarioArgs::Latency(a) => a.validate(),
            ScenarioArgs::Channels(a) if a.channels_per_subscriber > a.channels => {
                Err(BenchError::Usage(format!(
                    "--channels-per-subscriber {} exceeds --channels {}",
                    a.channels_per_subscriber, a.channels
                )))
            }
            _ => Ok(()),
        }
    }

    /// Runs the scenario once against `addr`.
    pub async fn run_once(&self, addr: &str) -> Result<BenchResult, BenchError> {
        let counter = Arc::new(AtomicU64::new(0));
        let common = self.common();
        cpu::target(if addr == common.addr {
            common.pid
        } else {
            common.compare_pid
        });
        let bar = progress::Progress::start(
            format!("{} {addr}", self.name()),
            self.total_publishes(),
            Arc::clone(&counter),
        );
        let result = match self {
            ScenarioArgs::Fanout(a) => scenario::fanout::run(a, addr, counter).await,
            ScenarioArgs::Patterns(a) => scenario::patterns::run(a, addr, counter).await,
            ScenarioArgs::Latency(a) => scenario::latency::run(a, addr, counter).await,
            ScenarioArgs::Channels(a) => scenario::channels::run(a, addr, counter).await,
            ScenarioArgs::Connections(a) => {
                // The PID names the --addr server; RSS is not measured on the other one.
                let pid = a.server_pid.filter(|_| addr == a.common.addr);
                scenario::connections::run(a, addr, pid, counter).await
            }
        };
        bar.finish();
        result.map(|mut r| {
            r.set_server_cpu(cpu::measured());
            r
        })
    }
}

/// Runs the benchmark the arguments describe and prints its results; every result is
/// returned so callers (and tests) can inspect it. `Err` means no complete result.
pub async fn run(args: &BenchArgs) -> Result<Vec<BenchResult>, BenchError> {
    args.scenario.validate()?;
    let common = args.scenario.common();
    let results = match &common.compare {
        None => vec![args.scenario.run_once(&common.addr).await?],
        Some(other) => compare::run(&args.scenario, &common.addr, other, common.rounds).await?,
    };
    if common.json {
        for r in &results {
            println!("{}", r.to_json_line());
        }
    } else {
        println!("{}", report::results_table(&results));
        if let Some(other) = &common.compare {
            println!("{}", compare::ratio_table(&results, &common.addr, other));
        }
    }
    Ok(results)
}

/// Entry point for the `herald bench` subcommand: builds a runtime, runs, prints, and
/// maps the outcome to an exit code (1: run failed or lost/reordered messages; 2: usage).
pub fn main(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("herald bench: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(results) => {
            let dirty: Vec<_> = results.iter().filter(|r| !r.is_clean()).collect();
            if dirty.is_empty() {
                return ExitCode::SUCCESS;
            }
            for r in dirty {
                eprintln!(
                    "herald bench: {} round {} on {}: {} lost, {} reordered, {} foreign, \
                     {} PUBLISH receiver counts wrong",
                    r.meta.scenario,
                    r.round,
                    r.meta.server,
                    r.lost,
                    r.reordered,
                    r.foreign,
                    r.receiver_mismatches
                );
            }
            ExitCode::from(EXIT_FAILED)
        }
        Err(err) => {
            eprintln!("herald bench: {err}");
            ExitCode::from(if err.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            })
        }
    }
}
