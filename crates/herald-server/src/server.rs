//! The listener: binds, accepts, runs the cron, and shuts down cleanly.
//!
//! [`Shared`] is everything connections share: the engine, the run-time configuration,
//! the client table and the counters. It is created once per server and handed to every
//! connection as an `Arc`; each field documents its own locking.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use herald_engine::{ClientId, CloseReason, Engine};
use herald_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clients::ClientTable;
use crate::config::{RuntimeConfig, ServerConfig, DEFAULT_HZ};
use crate::connection;
use crate::persistence::{AofConfig, Persistence};
use crate::stats::ServerStats;

/// How long shutdown waits for connections to finish after closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No listen address was configured.
    #[error("no bind address configured")]
    NoBindAddress,
    /// The append-only file could not be loaded or opened.
    #[error("{0}")]
    Persistence(String),
}

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    /// The pub/sub engine, shared with any other front-end (the HTTP gateway).
    pub engine: Arc<Engine>,
    /// The keyspace.
    pub store: Store,
    /// Parameters CONFIG SET may change.
    pub config: RuntimeConfig,
    /// Connected clients.
    pub clients: ClientTable,
    /// The clients in MONITOR mode.
    pub monitors: crate::monitor::Monitors,
    /// Counters.
    pub stats: ServerStats,
    /// When the server started.
    pub started: Instant,
    /// Random 40-hex-digit id of this run (INFO run_id).
    pub run_id: String,
    /// The TCP port actually bound.
    pub port: u16,
    /// Bytes in use once the server was set up, before any data was loaded (MEMORY
    /// STATS `startup.allocated`, the base of `keys.bytes-per-key`).
    pub startup_used_memory: u64,
    /// The addresses bound, as configured.
    pub bind: Vec<SocketAddr>,
    /// The append-only file, while `appendonly` is `yes`. Read by every command (an
    /// `ArcSwap` load writes no shared cache line, where a lock or an `Arc` clone would
    /// bounce one between the cores); swapped only when CONFIG SET turns persistence on
    /// or off, under the keyspace lock.
    persistence: ArcSwapOption<Persistence>,
    /// True while the append-only file is replayed (expiry is paused then).
    loading: AtomicBool,
    /// The `append*` settings, kept while persistence is off for CONFIG SET appendonly.
    pub aof_config: parking_lot::Mutex<AofConfig>,
    next_client_id: AtomicU64,
    /// Cancelled by SHUTDOWN: [`Server::run`] then stops as if its signal had come.
    shutdown: CancellationToken,
}

impl Shared {
    /// A fresh client id (ids start at 1 and are never reused).
    pub fn next_client_id(&self) -> ClientId {
        ClientId(self.next_client_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The live append-only file, if persistence is on, as an owned handle.
    pub fn persistence(&self) -> Option<Arc<Persistence>> {
        self.persistence.load_full()
    }

    /// The live append-only file for the duration of one command: cheaper than
    /// [`Shared::persistence`] (no reference count is touched); not to be kept across
    /// an `.await` or held by the thousands.
    pub fn persistence_now(&self) -> PersistenceGuard {
        self.persistence.load()
    }

    /// Installs (or, with `None`, removes) the append-only file, turning on (or off) the
    /// keyspace's recording of the changes it makes on its own. Returns the previous one.
    pub fn set_persistence(
        &self,
        persistence: Option<Arc<Persistence>>,
    ) -> Option<Arc<Persistence>> {
        let enabled = persistence.is_some();
        self.store.with(|keyspace| {
            keyspace.set_effect_logging(enabled);
            self.persistence.swap(persistence)
        })
    }

    /// True while the append-only file is being replayed (INFO `loading`).
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }

    /// Marks the replay of the append-only file, during which nothing expires: a key
    /// vanishes only where the replay reaches the `DEL` that the live server logged.
    pub(crate) fn set_loading(&self, loading: bool) {
        self.loading.store(loading, Ordering::Relaxed);
        self.store
            .with(|keyspace| keyspace.set_expiry_paused(loading));
    }

    /// Stops the server (SHUTDOWN, once the data is durable): [`Server::run`] closes
    /// every connection and returns, as when its `shutdown` future resolves.
    pub fn request_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Resolves once [`Shared::request_shutdown`] was called: what an embedder (the
    /// binary, for its HTTP gateway) waits on to stop the rest with the RESP server.
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shutdown.clone().cancelled_owned()
    }

    /// The keyspace's clock, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        unix_time_millis()
    }
}

/// What [`Shared::persistence_now`] returns: the live append-only file, if any, borrowed.
pub type PersistenceGuard = arc_swap::Guard<Option<Arc<Persistence>>>;

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Validates `config` and binds every listen address. With port 0 the first address
    /// picks a free port and the others reuse it.
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        Self::bind_with_engine(config, Arc::new(Engine::new())).await
    }

    /// As [`Server::bind`], serving `engine`, which other front-ends may share: a message
    /// published through any of them reaches subscribers of all.
    pub async fn bind_with_engine(
        config: &ServerConfig,
        engine: Arc<Engine>,
    ) -> Result<Server, ServerError> {
        let runtime = config.validate()?;
        if config.bind.is_empty() {
            return Err(ServerError::NoBindAddress);
        }
        let mut listeners = Vec::new();
        let mut port = config.port;
        for ip in &config.bind {
            let addr = SocketAddr::new(*ip, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            port = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?
                .port();
            listeners.push(listener);
        }
        let bind = listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect();
        let shared = Arc::new(Shared {
            engine,
            store: Store::new(),
            config: runtime,
            clients: ClientTable::default(),
            monitors: crate::monitor::Monitors::default(),
            stats: ServerStats::default(),
            started: Instant::now(),
            run_id: random_run_id(),
            port,
            startup_used_memory: crate::memory::report().used,
            bind,
            persistence: ArcSwapOption::empty(),
            loading: AtomicBool::new(false),
            aof_config: parking_lot::Mutex::new(config.aof_config()?),
            next_client_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        });
        if config.appendonly {
            let aof = shared.aof_config.lock().clone();
            let settings = aof.settings;
            let report = crate::persistence::load_file(&shared, &settings)
                .map_err(|err| ServerError::Persistence(err.to_string()))?;
            let persistence = Persistence::open(settings.clone()).map_err(|err| {
                ServerError::Persistence(format!(
                    "cannot open the append-only file {}: {err}",
                    settings.path().display()
                ))
            })?;
            persistence.set_auto_rewrite(aof.auto_rewrite_percentage, aof.auto_rewrite_min_size);
            tracing::info!(
                path = %settings.path().display(),
                fsync = %settings.fsync,
                commands_loaded = report.commands,
                "append-only file enabled"
            );
            shared.set_persistence(Some(Arc::new(persistence)));
        }
        Ok(Server { listeners, shared })
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.shared.bind
    }

    /// The shared state (for embedding and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `shutdown` resolves or a client's SHUTDOWN succeeds, then closes every
    /// connection and waits (at most [`SHUTDOWN_GRACE`]) for them to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let tracker = TaskTracker::new();
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            let shared = Arc::clone(&self.shared);
            let connections = tracker.clone();
            accept_loops.push(tokio::spawn(accept_loop(listener, shared, connections)));
        }
        let cron = tokio::spawn(cron(Arc::clone(&self.shared)));
        for addr in &self.shared.bind {
            tracing::info!(%addr, "ready to accept connections");
        }
        tokio::select! {
            () = shutdown => {}
            () = self.shared.shutdown.cancelled() => {}
        }
        tracing::info!("shutting down: closing listeners and connections");
        for task in accept_loops {
            task.abort();
        }
        cron.abort();
        for client in self.shared.clients.snapshot() {
            client.outbox.kill(CloseReason::Killed);
        }
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within the shutdown grace period");
        }
        if let Some(persistence) = self.shared.set_persistence(None) {
            let shared = Arc::clone(&self.shared);
            // Flushing and fsyncing is blocking file I/O: keep it off the async workers.
            let flushed = tokio::task::spawn_blocking(move || {
                persistence.shutdown();
                drop(shared);
            })
            .await;
            match flushed {
                Ok(()) => tracing::info!("append-only file flushed and fsynced"),
                Err(err) => tracing::error!("flushing the append-only file failed: {err}"),
            }
        }
        tracing::info!("Herald is now ready to exit, bye bye...");
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, connections: TaskTracker) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = Arc::clone(&shared);
                connections.spawn(connection::serve(shared, stream, peer));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Periodic work: enforces soft output limits on clients nobody publishes to any more,
/// reclaims expired keys nobody touches (active expiry), shrinks key tables that
/// deletes left mostly empty, and samples memory for INFO's `used_memory_peak`.
async fn cron(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / u64::from(DEFAULT_HZ)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::memory::sample_peak();
        let now = Instant::now();
        for client in shared.clients.snapshot() {
            client.outbox.enforce_limits(now);
        }
        let persistence = shared.persistence();
        let (flags, events) = shared.store.with(|keyspace| {
            let now = unix_time_millis();
            keyspace.active_expire_cycle(now);
            keyspace.shrink_sparse_tables();
            // A stream that expired under blocked group readers answers them now (NOGROUP),
            // not at the next command that happens to touch its database.
            keyspace.serve_blocked(now);
            if let Some(persistence) = &persistence {
                persistence.log_effects(keyspace);
            }
            (keyspace.notify_flags(), keyspace.take_events())
        });
        crate::command::publish_key_events(&shared, flags, events);
        if persistence.is_some_and(|p| p.auto_rewrite_due()) {
            tracing::info!("starting automatic rewriting of the append-only file");
            // Refused only when one is already running, which is what was wanted.
            let _ = crate::persistence::rewrite::start(&shared);
        }
    }
}

fn random_run_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Milliseconds since the Unix epoch: the clock of key expiry.
pub fn unix_time_millis() -> u64 {
    (unix_time_micros() / 1000) as u64
}

/// Microseconds since the Unix epoch (TIME, INFO server_time_usec).
pub fn unix_time_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0)
}
