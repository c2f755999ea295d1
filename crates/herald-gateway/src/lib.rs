//! `herald-gateway`: Herald for browsers. WebSocket and SSE subscribers, HTTP publish and
//! introspection, JWT channel authorization, Prometheus metrics and health checks, on
//! the same [`Engine`] as the RESP server, so a message published by redis-cli reaches a
//! browser and the reverse. The protocol is written down in `docs/gateway-protocol.md`.
//!
//! # Layout
//! - [`hub`]: shared state, the session table, [`hub::Session`] (one subscriber's outbox
//!   and subscriptions), counters.
//! - [`auth`]: JWT verification and [`auth::Grants`] (who may read/write what).
//! - [`conn`]: accepted connections the gateway can cut from outside (a stalled SSE
//!   client's, which hyper would otherwise keep for ever).
//! - [`protocol`]: the JSON frames and the payload encoding rule.
//! - [`ws`]: `GET /ws`; [`sse`]: `GET /sse`; [`api`]: the HTTP API, health, routing.
//! - [`dashboard`]: the dashboard's JSON and live stream; [`notify`]: the notification
//!   demo's API and the development sign-in; [`pages`]: the embedded HTML/JS/CSS.
//! - [`metrics`]: `GET /metrics` and the [`metrics::RespStats`] interface through which
//!   the binary shows the RESP side's counters.
//! - [`error`]: start-up errors and request errors with stable codes.
//!
//! This crate never depends on `herald-server` (the binary wires the two together) and
//! holds no lock across an `.await`.

pub mod api;
pub mod auth;
pub mod conn;
pub mod dashboard;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod notify;
pub mod pages;
pub mod protocol;
pub mod sse;
pub mod ws;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use herald_engine::{Engine, OutputLimits};
use tokio::net::TcpListener;

pub use auth::{Claims, Grants, TokenSigner, Verifier};
pub use error::{RequestError, StartError};
pub use metrics::{RespSnapshot, RespStats};

/// Default HTTP port of the gateway.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default largest inbound WebSocket message or HTTP body: 1 MB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default most subscriptions (channels plus patterns) per connection.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1024;
/// Default most WebSocket plus SSE connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default interval between SSE keep-alive comments: under common 30-60 s proxy timeouts.
pub const DEFAULT_SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The gateway's input limits; each refusal has its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest inbound WebSocket message / HTTP body, bytes.
    pub max_message_bytes: usize,
    /// Most subscriptions per connection.
    pub max_subscriptions: usize,
    /// Most WebSocket plus SSE connections.
    pub max_connections: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// How the gateway runs.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Token verification; `None` serves everyone with full access.
    pub verifier: Option<Arc<Verifier>>,
    /// Serve without auth on a non-loopback address anyway.
    pub allow_anonymous: bool,
    /// Input limits.
    pub limits: GatewayLimits,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// Output budgets, shared with the RESP server so one CONFIG SET governs both.
    pub output_limits: Arc<OutputLimits>,
    /// Signer of `POST /api/dev/token` (development sign-in); `None` turns it off.
    /// Refused on a non-loopback address.
    pub dev_tokens: Option<Arc<TokenSigner>>,
    /// The notification history behind `/api/notifications`; `None` answers 503.
    pub notifications: Option<herald_client::NotificationService>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_HTTP_PORT),
            verifier: None,
            allow_anonymous: false,
            limits: GatewayLimits::default(),
            sse_keep_alive: DEFAULT_SSE_KEEP_ALIVE,
            output_limits: Arc::new(OutputLimits::default()),
            dev_tokens: None,
            notifications: None,
        }
    }
}

/// A bound, not yet serving gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    addr: SocketAddr,
    hub: Arc<hub::Hub>,
}

impl Gateway {
    /// Checks `config` and binds its address. `resp` adds the RESP server's counters to
    /// /metrics.
    pub async fn bind(
        config: GatewayConfig,
        engine: Arc<Engine>,
        resp: Option<Arc<dyn RespStats>>,
    ) -> Result<Gateway, StartError> {
        if config.verifier.is_none() && !config.allow_anonymous && !config.addr.ip().is_loopback() {
            return Err(StartError::AnonymousOnNetwork(config.addr));
        }
        if config.dev_tokens.is_some() && !config.addr.ip().is_loopback() {
            return Err(StartError::DevTokensOnNetwork(config.addr));
        }
        let limits = config.limits;
        for (name, value) in [
            ("max message size", limits.max_message_bytes),
            ("max subscriptions", limits.max_subscriptions),
            ("max connections", limits.max_connections),
        ] {
            if value == 0 {
                return Err(StartError::BadLimit(format!("{name} must be at least 1")));
            }
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let hub = Arc::new(hub::Hub::new(engine, config, resp));
        Ok(Gateway {
            listener,
            addr,
            hub,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then closes every session (WebSocket close
    /// 1001) and stops.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let hub = Arc::clone(&self.hub);
        let app = api::router(Arc::clone(&hub));
        let cron = tokio::spawn(limit_cron(Arc::clone(&hub)));
        tracing::info!(http_addr = %self.addr, auth = hub.config.verifier.is_some(), "gateway serving HTTP, WebSocket and SSE");
        let stop = hub.shutdown.clone();
        let signal = async move {
            shutdown.await;
            stop.cancel();
        };
        let closing = Arc::clone(&hub);
        let app = app.into_make_service_with_connect_info::<conn::ConnectionCut>();
        let connections = Arc::new(conn::Connections::default());
        let listener = conn::Listener::new(self.listener, Arc::clone(&connections));
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            closing.shutdown.cancelled().await;
            closing.kill_all();
        });
        // A graceful shutdown waits for every response; one parked in a write to a client
        // that stopped reading would be waited for for ever.
        let cutter = {
            let stop = hub.shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                tokio::time::sleep(hub::SHUTDOWN_GRACE).await;
                connections.cut_all();
            })
        };
        tokio::spawn(signal);
        if let Err(err) = serve.await {
            tracing::warn!(%err, "gateway server failed");
        }
        cron.abort();
        cutter.abort();
        tracing::info!("gateway stopped");
    }
}

async fn limit_cron(hub: Arc<hub::Hub>) {
    let mut tick = tokio::time::interval(hub::LIMIT_CRON_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dashboard = tokio::time::interval(dashboard::SAMPLE_INTERVAL);
    dashboard.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => hub.enforce_limits(),
            _ = dashboard.tick() => {
                hub.dashboard.tick(&hub.engine);
                hub.dashboard.publish_live(&hub);
            }
        }
    }
}
