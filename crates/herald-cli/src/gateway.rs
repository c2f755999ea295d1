//! The HTTP gateway as `herald server` runs it: its flags and TOML keys, the checks on
//! them, and the wiring to the RESP server (one shared engine, one set of output limits,
//! the RESP counters shown on /metrics).
//!
//! The TOML file holds the RESP server's keys and these; [`split_config_file`] separates
//! them so each side keeps rejecting keys it does not know.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use herald_gateway::metrics::Backlog;
use herald_gateway::{
    GatewayConfig, GatewayLimits, RespSnapshot, RespStats, TokenSigner, Verifier,
};
use herald_server::stats::ServerStats;
use herald_server::{ServerConfig, Shared};
use serde::Deserialize;

/// Gateway flags of `herald server`.
#[derive(Debug, Args, Default)]
pub struct GatewayArgs {
    /// Address of the HTTP gateway (WebSocket, SSE, HTTP API, /metrics). Default 127.0.0.1.
    #[arg(long, value_name = "ADDR")]
    pub http_bind: Option<IpAddr>,
    /// Port of the HTTP gateway. Default 8080; 0 picks a free port.
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Do not start the HTTP gateway.
    #[arg(long)]
    pub no_http: bool,
    /// HS256 secret that gateway tokens are signed with.
    #[arg(
        long,
        value_name = "SECRET",
        env = "HERALD_GATEWAY_JWT_SECRET",
        hide_env_values = true
    )]
    pub gateway_jwt_secret: Option<String>,
    /// PEM public key (RSA or EC) that gateway tokens are signed for.
    #[arg(long, value_name = "FILE", conflicts_with = "gateway_jwt_secret")]
    pub gateway_jwt_public_key: Option<PathBuf>,
    /// Algorithm of --gateway-jwt-public-key (default RS256 for RSA keys, ES256 for EC).
    #[arg(long, value_name = "ALG", requires = "gateway_jwt_public_key")]
    pub gateway_jwt_algorithm: Option<String>,
    /// Serve the gateway without tokens on a non-loopback address anyway.
    #[arg(long)]
    pub gateway_allow_anonymous: bool,
    /// Largest WebSocket message or HTTP body a client may send (default 1mb).
    #[arg(long, value_name = "SIZE")]
    pub gateway_max_message_size: Option<String>,
    /// Most subscriptions per WebSocket or SSE connection (default 1024).
    #[arg(long, value_name = "N")]
    pub gateway_max_subscriptions: Option<usize>,
    /// Most WebSocket plus SSE connections at once (default 10000).
    #[arg(long, value_name = "N")]
    pub gateway_max_connections: Option<usize>,
    /// Seconds between SSE keep-alive comments (default 15).
    #[arg(long, value_name = "SECS")]
    pub gateway_sse_keepalive: Option<u64>,
    /// Development sign-in: `POST /api/dev/token` mints a token for any user id (the
    /// notification demo's "sign in"). Loopback addresses only. Without a JWT secret, a
    /// random one is made at start.
    #[arg(long)]
    pub gateway_dev_tokens: bool,
}

/// The gateway keys of the TOML file (same names as the flags).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
struct GatewayFile {
    http_bind: Option<IpAddr>,
    http_port: Option<u16>,
    no_http: Option<bool>,
    gateway_jwt_secret: Option<String>,
    gateway_jwt_public_key: Option<PathBuf>,
    gateway_jwt_algorithm: Option<String>,
    gateway_allow_anonymous: Option<bool>,
    gateway_max_message_size: Option<String>,
    gateway_max_subscriptions: Option<usize>,
    gateway_max_connections: Option<usize>,
    gateway_sse_keepalive: Option<u64>,
    gateway_dev_tokens: Option<bool>,
}

fn is_gateway_key(key: &str) -> bool {
    key.starts_with("http-") || key == "no-http" || key.starts_with("gateway-")
}

/// Reads the TOML file and splits it into the RESP server's and the gateway's settings.
pub fn split_config_file(path: &Path) -> anyhow::Result<(ServerConfig, GatewayArgs)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
    let (gateway, server): (toml::Table, toml::Table) =
        table.into_iter().partition(|(key, _)| is_gateway_key(key));
    let server: ServerConfig = toml::Value::Table(server)
        .try_into()
        .with_context(|| format!("invalid config {}", path.display()))?;
    let file: GatewayFile = toml::Value::Table(gateway)
        .try_into()
        .with_context(|| format!("invalid config {}", path.display()))?;
    let args = GatewayArgs {
        http_bind: file.http_bind,
        http_port: file.http_port,
        no_http: file.no_http.unwrap_or(false),
        gateway_jwt_secret: file.gateway_jwt_secret,
        gateway_jwt_public_key: file.gateway_jwt_public_key,
        gateway_jwt_algorithm: file.gateway_jwt_algorithm,
        gateway_allow_anonymous: file.gateway_allow_anonymous.unwrap_or(false),
        gateway_max_message_size: file.gateway_max_message_size,
        gateway_max_subscriptions: file.gateway_max_subscriptions,
        gateway_max_connections: file.gateway_max_connections,
        gateway_sse_keepalive: file.gateway_sse_keepalive,
        gateway_dev_tokens: file.gateway_dev_tokens.unwrap_or(false),
    };
    Ok((server, args))
}

impl GatewayArgs {
    /// Flags over file values: a flag given wins.
    pub fn over(self, file: GatewayArgs) -> GatewayArgs {
        GatewayArgs {
            http_bind: self.http_bind.or(file.http_bind),
            http_port: self.http_port.or(file.http_port),
            no_http: self.no_http || file.no_http,
            gateway_jwt_secret: self.gateway_jwt_secret.or(file.gateway_jwt_secret),
            gateway_jwt_public_key: self.gateway_jwt_public_key.or(file.gateway_jwt_public_key),
            gateway_jwt_algorithm: self.gateway_jwt_algorithm.or(file.gateway_jwt_algorithm),
            gateway_allow_anonymous: self.gateway_allow_anonymous || file.gateway_allow_anonymous,
            gateway_max_message_size: self
                .gateway_max_message_size
                .or(file.gateway_max_message_size),
            gateway_max_subscriptions: self
                .gateway_max_subscriptions
                .or(file.gateway_max_subscriptions),
            gateway_max_connections: self
                .gateway_max_connections
                .or(file.gateway_max_connections),
            gateway_sse_keepalive: self.gateway_sse_keepalive.or(file.gateway_sse_keepalive),
            gateway_dev_tokens: self.gateway_dev_tokens || file.gateway_dev_tokens,
        }
    }

    /// The gateway's configuration, or `None` with `--no-http`. Output limits are filled
    /// in by [`wire`].
    pub fn into_config(self) -> anyhow::Result<Option<GatewayConfig>> {
        if self.no_http {
            return Ok(None);
        }
        let defaults = GatewayConfig::default();
        let addr = SocketAddr::new(
            self.http_bind.unwrap_or(defaults.addr.ip()),
            self.http_port.unwrap_or(defaults.addr.port()),
        );
        if self.gateway_dev_tokens && !addr.ip().is_loopback() {
            bail!(
                "refusing --gateway-dev-tokens on {addr}, which is not a loopback address: development sign-in lets anyone sign in as anyone"
            );
        }
        if self.gateway_dev_tokens && self.gateway_jwt_public_key.is_some() {
            bail!("--gateway-dev-tokens signs with an HS256 secret: give --gateway-jwt-secret (or nothing, for a random one) instead of --gateway-jwt-public-key");
        }
        let mut dev_tokens = None;
        let mut secret = self.gateway_jwt_secret.clone().map(String::into_bytes);
        if self.gateway_dev_tokens {
            let key = secret.get_or_insert_with(|| {
                tracing::info!("development sign-in: gateway tokens are signed with a random secret made at start");
                rand::random::<[u8; 32]>().to_vec()
            });
            dev_tokens = Some(Arc::new(TokenSigner::hs256(key)?));
        }
        let verifier = match (&secret, &self.gateway_jwt_public_key) {
            (Some(secret), None) => Some(Verifier::hs256(secret)?),
            (None, Some(path)) => Some(Verifier::public_key_file(
                path,
                self.gateway_jwt_algorithm.as_deref(),
            )?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                bail!("give --gateway-jwt-secret or --gateway-jwt-public-key, not both")
            }
        };
        let mut limits = GatewayLimits::default();
        if let Some(size) = &self.gateway_max_message_size {
            let bytes = herald_server::config::parse_memory(size)
                .map_err(|err| anyhow::anyhow!("--gateway-max-message-size: {err}"))?;
            limits.max_message_bytes = usize::try_from(bytes)
                .context("--gateway-max-message-size: too large for this machine")?;
        }
        if let Some(n) = self.gateway_max_subscriptions {
            limits.max_subscriptions = n;
        }
        if let Some(n) = self.gateway_max_connections {
            limits.max_connections = n;
        }
        for (flag, value) in [
            ("--gateway-max-message-size", limits.max_message_bytes),
            ("--gateway-max-subscriptions", limits.max_subscriptions),
            ("--gateway-max-connections", limits.max_connections),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        let sse_keep_alive = match self.gateway_sse_keepalive {
            Some(0) => bail!("--gateway-sse-keepalive must be at least 1 second"),
            Some(secs) => Duration::from_secs(secs),
            None => defaults.sse_keep_alive,
        };
        if verifier.is_none() && !self.gateway_allow_anonymous && !addr.ip().is_loopback() {
            bail!(
                "refusing to serve the gateway without authentication on {addr}, which is not a loopback address: give --gateway-jwt-secret or --gateway-jwt-public-key, or --gateway-allow-anonymous"
            );
        }
        Ok(Some(GatewayConfig {
            addr,
            verifier: verifier.map(Arc::new),
            allow_anonymous: self.gateway_allow_anonymous,
            limits,
            sse_keep_alive,
            output_limits: defaults.output_limits,
            dev_tokens,
            notifications: None,
        }))
    }
}

/// The RESP server's counters, as /metrics reads them.
pub struct RespCounters(pub Arc<Shared>);

impl RespStats for RespCounters {
    fn snapshot(&self) -> RespSnapshot {
        let shared = &self.0;
        let stats = &shared.stats;
        let clients = shared.clients.snapshot();
        let (mut channels, mut patterns) = (0u64, 0u64);
        for client in &clients {
            let meta = client.meta.lock();
            channels += (meta.channels + meta.shard_channels) as u64;
            patterns += meta.patterns as u64;
        }
        RespSnapshot {
            connections: clients.len() as u64,
            connections_accepted: ServerStats::get(&stats.connections_received),
            connections_rejected: ServerStats::get(&stats.rejected_connections),
            received_bytes: stats.net_input_bytes.get(),
            sent_bytes: stats.net_output_bytes.get(),
            delivered: stats.deliveries_written.get(),
            slow_consumer_disconnects: ServerStats::get(&stats.output_limit_disconnections),
            channel_subscriptions: channels,
            pattern_subscriptions: patterns,
            commands: stats.commands.snapshot(),
        }
    }

    fn backlog(&self, limit: usize) -> Vec<Backlog> {
        let mut rows: Vec<Backlog> = self
            .0
            .clients
            .snapshot()
            .iter()
            .filter_map(|client| {
                let queued = client.outbox.queued_bytes();
                (queued > 0).then(|| Backlog {
                    transport: "resp",
                    client: client.id.0,
                    peer: Some(client.peer.to_string()),
                    name: client
                        .meta
                        .lock()
                        .name
                        .as_ref()
                        .map(|name| String::from_utf8_lossy(name).into_owned()),
                    queued_bytes: queued as u64,
                })
            })
            .collect();
        Backlog::keep_largest(&mut rows, limit);
        rows
    }
}

/// The gateway's configuration with the RESP server's output limits, so that one
/// `CONFIG SET client-output-buffer-limit` governs browsers too, and the notification
/// history reached through `resp` (see [`notification_service`]).
pub fn wire(
    mut config: GatewayConfig,
    shared: &Arc<Shared>,
    notifications: Option<herald_client::NotificationService>,
) -> GatewayConfig {
    config.output_limits = Arc::clone(shared.config.output_limits());
    config.notifications = notifications;
    config
}

/// The notification service over a connection to this process's own RESP server, so the
/// gateway's writes take the ordinary command path (append-only file, keyspace
/// notifications, ACL) instead of reaching into the keyspace beside it. It authenticates
/// with the server's `requirepass` of the moment at every (re)connection, so a `CONFIG
/// SET requirepass` does not lock it out. Call once the server accepts. `None`, with a
/// warning, when the server cannot be reached; the gateway then answers its notification
/// routes with 503.
pub async fn notification_service(
    listening: &[SocketAddr],
    shared: &Arc<Shared>,
) -> Option<herald_client::NotificationService> {
    let Some(addr) = listening.first() else {
        tracing::warn!(
            "gateway: the RESP server has no TCP address, so the notification demo has no history"
        );
        return None;
    };
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("redis://{}", SocketAddr::new(ip, addr.port()));
    let shared = Arc::clone(shared);
    let options =
        herald_client::ConnectOptions::default().password_from(move || shared.config.requirepass());
    match herald_client::Herald::connect_with(&url, &options).await {
        Ok(herald) => Some(herald.notifications()),
        Err(err) => {
            tracing::warn!(%err, "gateway: cannot reach the RESP server for the notification history");
            None
        }
    }
}
