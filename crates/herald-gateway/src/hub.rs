//! State every gateway request shares: the engine, the configuration, the table of live
//! sessions and the counters; and [`Session`], one WebSocket or SSE subscriber.
//!
//! A session owns an [`Outbox`] registered in the engine exactly like a RESP connection's,
//! so publishes from any front-end reach it, under the same output limits. Its half of
//! the two-way index (which channels and patterns it holds) lives in the session, and
//! dropping the session unsubscribes everything: no path out of a handler can leak a
//! subscription.
//!
//! Locking: the session table is a `parking_lot::Mutex<HashMap>` touched on connect,
//! disconnect, the limit cron and shutdown, never per message. Counters are relaxed
//! atomics (statistics, not synchronisation).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use herald_engine::{ClientClass, ClientId, Engine, Outbox, Scope};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::conn::Cut;
use crate::error::RequestError;
use crate::metrics::RespStats;
use crate::GatewayConfig;

/// Client ids of gateway sessions start here, far above the RESP server's ids (which
/// count up from 1), so both kinds can share one engine without colliding.
pub const GATEWAY_CLIENT_ID_BASE: u64 = 1 << 62;
/// How often soft output limits are enforced on sessions nobody publishes to.
pub const LIMIT_CRON_INTERVAL: Duration = Duration::from_millis(100);
/// At shutdown, how long connections have to finish (an SSE stream to take its close
/// event) before every one still open is cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The gateway's transports, the `transport` label of its metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `GET /ws`.
    WebSocket = 0,
    /// `GET /sse`.
    Sse = 1,
}

impl Transport {
    /// Both transports, in label order.
    pub const ALL: [Transport; 2] = [Transport::WebSocket, Transport::Sse];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// Counters of one transport.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Sessions open now.
    pub connections: AtomicI64,
    /// Sessions opened since start.
    pub accepted: AtomicU64,
    /// Sessions refused by the connection limit.
    pub rejected: AtomicU64,
    /// Bytes received from clients (WebSocket message payloads).
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients (frame or event payloads).
    pub bytes_out: AtomicU64,
    /// Messages sent to subscribers.
    pub delivered: AtomicU64,
    /// Sessions closed for exceeding their output budget.
    pub slow_consumers: AtomicU64,
    /// Channel subscriptions held now.
    pub channel_subscriptions: AtomicI64,
    /// Pattern subscriptions held now.
    pub pattern_subscriptions: AtomicI64,
}

/// Gateway-wide counters.
#[derive(Debug, Default)]
pub struct GatewayStats {
    transports: [TransportStats; 2],
    /// Requests refused with 401 / an auth error, by [`crate::auth::AuthError::code`].
    pub auth_failures: Mutex<HashMap<&'static str, u64>>,
    /// Messages published through the gateway (WebSocket and HTTP).
    pub published: AtomicU64,
}

impl GatewayStats {
    /// The counters of `transport`.
    pub fn of(&self, transport: Transport) -> &TransportStats {
        &self.transports[transport as usize]
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one refused authentication.
    pub fn auth_failed(&self, code: &'static str) {
        *self.auth_failures.lock().entry(code).or_default() += 1;
    }
}

/// Everything requests share.
pub struct Hub {
    /// The engine, shared with the RESP server.
    pub engine: Arc<Engine>,
    /// Configuration.
    pub config: GatewayConfig,
    /// Counters.
    pub stats: GatewayStats,
    /// The RESP side's counters, for /metrics (absent when the gateway runs alone).
    pub resp: Option<Arc<dyn RespStats>>,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Message frames encoded once per message for all receivers.
    pub frames: crate::protocol::FrameCache,
    /// The dashboard's sampler.
    pub dashboard: crate::dashboard::Dashboard,
    sessions: Mutex<HashMap<ClientId, (Transport, Arc<Outbox>)>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.sessions.lock().len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over `engine`.
    pub fn new(
        engine: Arc<Engine>,
        config: GatewayConfig,
        resp: Option<Arc<dyn RespStats>>,
    ) -> Self {
        Hub {
            engine,
            config,
            stats: GatewayStats::default(),
            resp,
            shutdown: CancellationToken::new(),
            frames: crate::protocol::FrameCache::default(),
            dashboard: crate::dashboard::Dashboard::default(),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(GATEWAY_CLIENT_ID_BASE),
        }
    }

    /// Opens a session unless `max_connections` are open (503 `too_many_connections`).
    pub fn open(self: &Arc<Self>, transport: Transport) -> Result<Session, RequestError> {
        let stats = self.stats.of(transport);
        let id = ClientId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(id, Arc::clone(&self.config.output_limits)));
        {
            let mut sessions = self.sessions.lock();
            if sessions.len() >= self.config.limits.max_connections {
                GatewayStats::add(&stats.rejected, 1);
                return Err(RequestError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    format!(
                        "max number of gateway connections reached ({})",
                        self.config.limits.max_connections
                    ),
                ));
            }
            sessions.insert(id, (transport, Arc::clone(&outbox)));
        }
        GatewayStats::add(&stats.accepted, 1);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Session {
            hub: Arc::clone(self),
            transport,
            outbox,
            subscriptions: Arc::default(),
        })
    }

    fn outboxes(&self) -> Vec<Arc<Outbox>> {
        self.sessions
            .lock()
            .values()
            .map(|(_, outbox)| Arc::clone(outbox))
            .collect()
    }

    /// The `limit` sessions with the most output waiting (none with nothing waiting),
    /// most first: the dashboard's slow-consumer table.
    pub fn backlog(&self, limit: usize) -> Vec<crate::metrics::Backlog> {
        let mut rows: Vec<_> = self
            .sessions
            .lock()
            .values()
            .filter_map(|(transport, outbox)| {
                let queued = outbox.queued_bytes();
                (queued > 0).then(|| crate::metrics::Backlog {
                    transport: transport.label(),
                    client: outbox.id().0,
                    peer: None,
                    name: None,
                    queued_bytes: queued as u64,
                })
            })
            .collect();
        crate::metrics::Backlog::keep_largest(&mut rows, limit);
        rows
    }

    /// Sessions open now, both transports.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Applies soft output limits to every session (the limit cron).
    pub fn enforce_limits(&self) {
        let now = Instant::now();
        let outboxes: Vec<_> = self.outboxes();
        for outbox in outboxes {
            outbox.enforce_limits(now);
        }
    }

    /// Closes every session (shutdown).
    pub fn kill_all(&self) {
        let outboxes: Vec<_> = self.outboxes();
        for outbox in outboxes {
            outbox.kill(herald_engine::CloseReason::Killed);
        }
    }
}

/// A session's half of the two-way index. Behind a mutex shared with the session's
/// watchdog (see [`Session::release_when_killed`]), locked only for set operations and
/// the engine calls that go with them, never across an `.await`.
#[derive(Debug, Default)]
struct Subscriptions {
    channels: HashSet<String>,
    patterns: HashSet<String>,
}

impl Subscriptions {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// One WebSocket or SSE subscriber; see the module docs.
#[derive(Debug)]
pub struct Session {
    hub: Arc<Hub>,
    transport: Transport,
    outbox: Arc<Outbox>,
    subscriptions: Arc<Mutex<Subscriptions>>,
}

/// Drops every subscription of `outbox` from the engine and the gauges.
fn release(hub: &Hub, transport: Transport, outbox: &Outbox, subscriptions: &Mutex<Subscriptions>) {
    let mut held = subscriptions.lock();
    let stats = hub.stats.of(transport);
    for channel in std::mem::take(&mut held.channels) {
        hub.engine
            .unsubscribe(Scope::Classic, channel.as_bytes(), outbox.id());
        stats.channel_subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
    for pattern in std::mem::take(&mut held.patterns) {
        hub.engine.punsubscribe(pattern.as_bytes(), outbox.id());
        stats.pattern_subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Session {
    /// The session's outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The shared state.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The counters of this session's transport.
    pub fn stats(&self) -> &TransportStats {
        self.hub.stats.of(self.transport)
    }

    /// Subscriptions held (channels plus patterns).
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().count()
    }

    /// Once the outbox is killed (slow consumer, shutdown), unsubscribes and counts a slow
    /// consumer at once ([`Session::note_slow_consumer`]) instead of when the session
    /// ends: an SSE response whose client stopped reading ends only when hyper can write
    /// again, which may be never. So a slow consumer's connection is cut too, as Redis
    /// closes it (see [`crate::conn`]; at shutdown every connection is cut after
    /// [`SHUTDOWN_GRACE`], `Gateway::run`).
    pub fn release_when_killed(&self, connection: Option<Arc<Cut>>) {
        let hub = Arc::clone(&self.hub);
        let outbox = Arc::clone(&self.outbox);
        let subscriptions = Arc::clone(&self.subscriptions);
        let transport = self.transport;
        tokio::spawn(async move {
            outbox.killed().await;
            let slow = note_closed(&hub, transport, &outbox, &subscriptions);
            // A session that ended otherwise (token expired, client gone, shutdown) leaves
            // its connection alone: it may serve other requests.
            if let (true, Some(connection)) = (slow, connection) {
                connection.make();
            }
        });
    }

    /// Fails with `too_many_subscriptions` unless adding these would stay within the limit.
    pub fn check_room(&self, channels: &[String], patterns: &[String]) -> Result<(), RequestError> {
        let held = self.subscriptions.lock();
        let new_channels: HashSet<&String> = channels
            .iter()
            .filter(|name| !held.channels.contains(*name))
            .collect();
        let new_patterns: HashSet<&String> = patterns
            .iter()
            .filter(|name| !held.patterns.contains(*name))
            .collect();
        let total = held.count() + new_channels.len() + new_patterns.len();
        let max = self.hub.config.limits.max_subscriptions;
        if total > max {
            return Err(RequestError::bad_request(
                "too_many_subscriptions",
                format!("at most {max} subscriptions per connection ({total} requested)"),
            ));
        }
        Ok(())
    }

    /// Subscribes to `channel`; false when already subscribed (or the session is closed).
    pub fn subscribe(&mut self, channel: &str) -> bool {
        let mut held = self.subscriptions.lock();
        if self.outbox.is_killed() || !held.channels.insert(channel.to_owned()) {
            return false;
        }
        self.hub.engine.subscribe(
            Scope::Classic,
            Bytes::copy_from_slice(channel.as_bytes()),
            &self.outbox,
        );
        self.stats()
            .channel_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        self.update_class(held.count());
        true
    }

    /// Subscribes to `pattern`; false when already subscribed (or the session is closed).
    pub fn psubscribe(&mut self, pattern: &str) -> bool {
        let mut held = self.subscriptions.lock();
        if self.outbox.is_killed() || !held.patterns.insert(pattern.to_owned()) {
            return false;
        }
        self.hub
            .engine
            .psubscribe(Bytes::copy_from_slice(pattern.as_bytes()), &self.outbox);
        self.stats()
            .pattern_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        self.update_class(held.count());
        true
    }

    /// Unsubscribes from `channel`; false when not subscribed.
    pub fn unsubscribe(&mut self, channel: &str) -> bool {
        let mut held = self.subscriptions.lock();
        if !held.channels.remove(channel) {
            return false;
        }
        self.hub
            .engine
            .unsubscribe(Scope::Classic, channel.as_bytes(), self.outbox.id());
        self.stats()
            .channel_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
        self.update_class(held.count());
        true
    }

    /// Unsubscribes from `pattern`; false when not subscribed.
    pub fn punsubscribe(&mut self, pattern: &str) -> bool {
        let mut held = self.subscriptions.lock();
        if !held.patterns.remove(pattern) {
            return false;
        }
        self.hub
            .engine
            .punsubscribe(pattern.as_bytes(), self.outbox.id());
        self.stats()
            .pattern_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
        self.update_class(held.count());
        true
    }

    /// Channels held, sorted.
    pub fn channels(&self) -> Vec<String> {
        let mut names: Vec<String> = self.subscriptions.lock().channels.iter().cloned().collect();
        names.sort();
        names
    }

    /// Patterns held, sorted.
    pub fn patterns(&self) -> Vec<String> {
        let mut names: Vec<String> = self.subscriptions.lock().patterns.iter().cloned().collect();
        names.sort();
        names
    }

    fn update_class(&self, subscriptions: usize) {
        // Subscribed sessions get the pubsub output limit, as RESP clients do.
        let class = if subscriptions > 0 {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        };
        self.outbox.set_class(class);
    }

    /// After the outbox was closed: gives the subscriptions back (so that NUMSUB and
    /// PUBLISH's count no longer see this client) and, if it was closed for exceeding its
    /// budget, counts and logs a slow consumer and returns true. For a session without
    /// the watchdog of [`Session::release_when_killed`] (which does this itself).
    pub fn note_slow_consumer(&self) -> bool {
        note_closed(&self.hub, self.transport, &self.outbox, &self.subscriptions)
    }

    /// Whether the outbox was closed for exceeding its budget (no side effects).
    pub fn is_slow_consumer(&self) -> bool {
        closed_for_output_limit(&self.outbox).is_some()
    }
}

/// Why `outbox` was closed, if it was for exceeding its budget.
fn closed_for_output_limit(outbox: &Outbox) -> Option<herald_engine::CloseReason> {
    outbox
        .close_reason()
        .filter(herald_engine::CloseReason::is_output_limit)
}

/// A closed session's subscriptions go back before it is counted, so that whoever sees
/// the slow-consumer count also sees the subscription gone. True for a slow consumer.
fn note_closed(
    hub: &Hub,
    transport: Transport,
    outbox: &Outbox,
    subscriptions: &Mutex<Subscriptions>,
) -> bool {
    release(hub, transport, outbox, subscriptions);
    let Some(reason) = closed_for_output_limit(outbox) else {
        return false;
    };
    GatewayStats::add(&hub.stats.of(transport).slow_consumers, 1);
    tracing::warn!(
        client = %outbox.id(),
        transport = transport.label(),
        ?reason,
        "gateway client closed for overcoming of output buffer limits"
    );
    true
}

impl Drop for Session {
    fn drop(&mut self) {
        release(&self.hub, self.transport, &self.outbox, &self.subscriptions);
        self.outbox.kill(herald_engine::CloseReason::Killed);
        self.hub.sessions.lock().remove(&self.outbox.id());
        self.stats().connections.fetch_sub(1, Ordering::Relaxed);
    }
}
