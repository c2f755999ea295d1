//! The remote back end: commands to a Herald, Redis or Valkey server over the `redis` crate.
//!
//! Ordinary commands go through one [`ConnectionManager`] (multiplexed, reconnects on its
//! own), or one cluster connection for `redis+cluster://` URLs (routes by slot, repairs
//! its node connections on its own). WATCH needs a connection nobody else writes to between WATCH and EXEC, so the
//! optimistic transactions of [`crate::NotificationService::mark_as_read`] run on a
//! dedicated connection behind an async mutex, opened on first use and replaced after an
//! error. Subscriptions use connections of their own (`subscriber::remote`).
//!
//! This module never retries a command by itself beyond the WATCH loop: the caller sees
//! connection errors and decides.

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{ProtocolVersion, Value};
use std::time::Duration;

use crate::connect::ConnectOptions;
use crate::credentials::CurrentPassword;
use crate::error::Error;
use crate::subscriber::SubscriptionKind;
use crate::transport::{ElementUpdate, Scope};

/// How long one attempt to open a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command may wait for its reply before the call fails.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// WATCH/MULTI/EXEC rounds before an update gives up under constant contention.
pub(crate) const MAX_OPTIMISTIC_ATTEMPTS: u32 = 64;

/// Where the server is: one server, or the seed nodes of a Redis Cluster.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Single(SingleServer),
    #[cfg(feature = "cluster")]
    Cluster(ClusterSeeds),
}

/// One server: the URL's client, and the password to use instead of the URL's.
#[derive(Clone, Debug)]
pub(crate) struct SingleServer {
    client: redis::Client,
    password: Option<CurrentPassword>,
}

impl SingleServer {
    /// The client to open a connection with now: the URL's, with the password of this
    /// moment when one is asked for, and `protocol` when one is forced.
    fn client(
        &self,
        protocol: Option<ProtocolVersion>,
    ) -> Result<redis::Client, redis::RedisError> {
        if self.password.is_none() && protocol.is_none() {
            return Ok(self.client.clone());
        }
        let mut info = self.client.get_connection_info().clone();
        if let Some(password) = &self.password {
            info = password.apply(info);
        }
        if let Some(protocol) = protocol {
            let settings = info.redis_settings().clone().set_protocol(protocol);
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info)
    }
}

/// The seed nodes of a cluster URL, one URL each, the TLS certificates they share, and
/// the password to use instead of the URL's.
#[cfg(feature = "cluster")]
#[derive(Clone, Debug)]
pub(crate) struct ClusterSeeds {
    nodes: Vec<String>,
    password: Option<CurrentPassword>,
    /// Given through [`ConnectOptions`]; the TLS mode is the URL's.
    #[cfg(feature = "tls")]
    certificates: Option<(redis::TlsMode, redis::TlsCertificates)>,
}

/// The URL schemes naming a cluster: `redis+cluster://[user:pw@]host:port,host:port`.
#[cfg(feature = "cluster")]
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis"),
    ("rediss+cluster://", "rediss"),
];

/// The URL schemes that mean TLS (`valkeys` is the `redis` crate's alias of `rediss`).
const TLS_SCHEMES: [&str; 3] = ["rediss://", "rediss+cluster://", "valkeys://"];

impl Endpoint {
    pub(crate) fn parse(url: &str, options: &ConnectOptions) -> Result<Endpoint, Error> {
        let tls = TLS_SCHEMES.iter().any(|scheme| url.starts_with(scheme));
        #[cfg(not(feature = "tls"))]
        if tls {
            return Err(Error::InvalidUrl(format!(
                "{}: TLS URLs need herald-client's `tls` feature",
                redacted(url)
            )));
        }
        #[cfg(feature = "tls")]
        let certificates = {
            if tls {
                // rustls needs a process-wide crypto provider: ring, unless the application
                // installed another first (then this does nothing).
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let certificates = options.certificates()?;
            if certificates.is_some() && !tls {
                return Err(Error::InvalidUrl(format!(
                    "{}: TLS certificates were given for a URL without TLS (use rediss://)",
                    redacted(url)
                )));
            }
            certificates
        };
        #[cfg(feature = "cluster")]
        for (prefix, scheme) in CLUSTER_SCHEMES {
            if let Some(rest) = url.strip_prefix(prefix) {
                let (nodes, _insecure) = cluster_nodes(rest, scheme)?;
                let password = match (options.password_source(), nodes.first()) {
                    (Some(source), Some(first)) => {
                        let info = redis::IntoConnectionInfo::into_connection_info(first.as_str())
                            .map_err(|err| {
                                Error::InvalidUrl(format!("{}: {err}", redacted(url)))
                            })?;
                        Some(CurrentPassword::new(
                            info.redis_settings().username(),
                            source,
                        ))
                    }
                    _ => None,
                };
                return Ok(Endpoint::Cluster(ClusterSeeds {
                    nodes,
                    password,
                    #[cfg(feature = "tls")]
                    certificates: certificates.map(|certificates| {
                        let mode = if _insecure {
                            redis::TlsMode::Insecure
                        } else {
                            redis::TlsMode::Secure
                        };
                        (mode, certificates)
                    }),
                }));
            }
        }
        if url.contains("+cluster://") {
            return Err(Error::InvalidUrl(format!(
                "{}: cluster URLs need herald-client's `cluster` feature",
                redacted(url)
            )));
        }
        let single = |client: redis::Client| {
            let password = options.password_source().map(|source| {
                CurrentPassword::new(
                    client.get_connection_info().redis_settings().username(),
                    source,
                )
            });
            Endpoint::Single(SingleServer { client, password })
        };
        #[cfg(feature = "tls")]
        if let Some(certificates) = certificates {
            // The URL was checked to be rediss://: what fails here is a certificate or key.
            return redis::Client::build_with_tls(url, certificates)
                .map(single)
                .map_err(|err| Error::InvalidTls(err.to_string()));
        }
        redis::Client::open(url)
            .map(single)
            .map_err(|err| Error::InvalidUrl(format!("{}: {err}", redacted(url))))
    }

    async fn shared(&self) -> Result<Commands, Error> {
        Ok(match self {
            Endpoint::Single(server) => {
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(3);
                // The manager reconnects on its own: it asks for the password each time.
                if let Some(password) = &server.password {
                    config = config.set_credentials_provider(password.clone());
                }
                Commands::Single(
                    ConnectionManager::new_with_config(server.client.clone(), config).await?,
                )
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(seeds) => Commands::Cluster(
                seeds
                    .client(|builder| builder)?
                    .get_async_connection()
                    .await?,
            ),
        })
    }

    /// True for one server (not a cluster).
    pub(crate) fn is_single(&self) -> bool {
        matches!(self, Endpoint::Single(_))
    }

    /// A connection used by nobody else (for WATCH).
    async fn dedicated(&self) -> Result<Commands, Error> {
        Ok(match self {
            Endpoint::Single(server) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                Commands::Dedicated(
                    server
                        .client(None)?
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(_) => self.shared().await?,
        })
    }

    /// A RESP3 connection delivering pushes to `push` (what subscribers use first).
    pub(crate) async fn subscriber_connection(
        &self,
        push: impl redis::aio::AsyncPushSender,
    ) -> Result<SubscriberConnection, redis::RedisError> {
        match self {
            Endpoint::Single(server) => {
                let client = server.client(Some(ProtocolVersion::RESP3))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_push_sender(push);
                Ok(SubscriberConnection::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(seeds) => Ok(SubscriberConnection::Cluster(
                seeds
                    .client(|builder| {
                        builder
                            .use_protocol(ProtocolVersion::RESP3)
                            .push_sender(push)
                    })?
                    .get_async_connection()
                    .await?,
            )),
        }
    }

    /// A RESP2 pub/sub connection (for servers that refuse `HELLO 3`), split into the
    /// command side and the message stream. One server only: cluster subscribers need
    /// RESP3.
    pub(crate) async fn resp2_subscriber_connection(
        &self,
    ) -> Result<(SubscriberConnection, redis::aio::PubSubStream), redis::RedisError> {
        match self {
            Endpoint::Single(server) => {
                let client = server.client(Some(ProtocolVersion::RESP2))?;
                let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connecting timed out",
                        ))
                    })??;
                let (sink, stream) = pubsub.split();
                Ok((SubscriberConnection::Resp2(sink), stream))
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(_) => Err(redis::RedisError::from((
                redis::ErrorKind::RESP3NotSupported,
                "a cluster subscriber needs RESP3 (HELLO 3), which a node refused",
            ))),
        }
    }
}

#[cfg(feature = "cluster")]
impl ClusterSeeds {
    fn client(
        &self,
        configure: impl FnOnce(
            redis::cluster::ClusterClientBuilder,
        ) -> redis::cluster::ClusterClientBuilder,
    ) -> Result<redis::cluster::ClusterClient, redis::RedisError> {
        #[allow(unused_mut)]
        let mut builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT);
        #[cfg(feature = "tls")]
        if let Some((mode, certificates)) = &self.certificates {
            builder = builder.tls(*mode).certs(certificates.clone());
        }
        if let Some(password) = &self.password {
            builder = builder.set_credentials_provider(password.clone());
        }
        configure(builder).build()
    }
}

/// `url` with the password of its user info replaced by `***`, for error messages (which
/// end up in logs). Without a `:` the whole user info may be a password, so it all goes.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{user}@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `host:port,host:port[#insecure]` (with optional `user:pw@` for all) as one URL per
/// node, and whether `#insecure` was given.
#[cfg(feature = "cluster")]
fn cluster_nodes(rest: &str, scheme: &str) -> Result<(Vec<String>, bool), Error> {
    let (rest, insecure) = match rest.split_once('#') {
        None => (rest, false),
        Some((rest, "insecure")) if scheme == "rediss" => (rest, true),
        Some((_, fragment)) => {
            return Err(Error::InvalidUrl(format!(
                "a cluster URL takes no #{fragment} (only rediss+cluster:// takes #insecure)"
            )))
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Err(Error::InvalidUrl(format!(
            "a cluster URL has no database or options: /{path}"
        )));
    }
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    let fragment = if insecure { "#insecure" } else { "" };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{credentials}{host}/{fragment}"))
        .collect();
    if nodes.is_empty() {
        return Err(Error::InvalidUrl(
            "a cluster URL needs at least one host:port".into(),
        ));
    }
    for node in &nodes {
        redis::Client::open(node.as_str())
            .map_err(|err| Error::InvalidUrl(format!("{}: {err}", redacted(node))))?;
    }
    Ok((nodes, insecure))
}

/// A connection commands are sent on.
#[derive(Clone)]
enum Commands {
    /// The shared, self-reconnecting connection to one server.
    Single(ConnectionManager),
    /// A connection of its own to one server.
    Dedicated(MultiplexedConnection),
    /// A cluster connection (routes by slot, reconnects nodes itself).
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Commands {
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, redis::RedisError> {
        match self {
            Commands::Single(conn) => cmd.query_async(conn).await,
            Commands::Dedicated(conn) => cmd.query_async(conn).await,
            #[cfg(feature = "cluster")]
            Commands::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    async fn pipeline<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> Result<T, redis::RedisError> {
        match self {
            Commands::Single(conn) => pipe.query_async(conn).await,
            Commands::Dedicated(conn) => pipe.query_async(conn).await,
            #[cfg(feature = "cluster")]
            Commands::Cluster(conn) => pipe.query_async(conn).await,
        }
    }
}

/// The connection of a subscriber.
pub(crate) enum SubscriberConnection {
    /// RESP3: messages arrive as pushes on the connection's push sender.
    Single(MultiplexedConnection),
    /// RESP2 pub/sub: messages arrive on the `PubSubStream` split from it. The `redis`
    /// crate's RESP2 pub/sub has no SSUBSCRIBE (and takes an `smessage` for a broken
    /// connection), so shard channels are refused on it.
    Resp2(redis::aio::PubSubSink),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl SubscriberConnection {
    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE or their UN- forms, for one name.
    pub(crate) async fn change(
        &mut self,
        subscribe: bool,
        kind: SubscriptionKind,
        name: &str,
    ) -> Result<(), redis::RedisError> {
        match self {
            // One name per command: its one confirmation is the command's reply.
            SubscriberConnection::Single(conn) => {
                let command = match (subscribe, kind) {
                    (true, SubscriptionKind::Channel) => "SUBSCRIBE",
                    (true, SubscriptionKind::Pattern) => "PSUBSCRIBE",
                    (true, SubscriptionKind::Shard) => "SSUBSCRIBE",
                    (false, SubscriptionKind::Channel) => "UNSUBSCRIBE",
                    (false, SubscriptionKind::Pattern) => "PUNSUBSCRIBE",
                    (false, SubscriptionKind::Shard) => "SUNSUBSCRIBE",
                };
                let _: Value = redis::cmd(command).arg(name).query_async(conn).await?;
                Ok(())
            }
            SubscriberConnection::Resp2(sink) => match (subscribe, kind) {
                (true, SubscriptionKind::Channel) => sink.subscribe(name).await,
                (true, SubscriptionKind::Pattern) => sink.psubscribe(name).await,
                (false, SubscriptionKind::Channel) => sink.unsubscribe(name).await,
                (false, SubscriptionKind::Pattern) => sink.punsubscribe(name).await,
                (true, SubscriptionKind::Shard) => Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "shard channels need RESP3",
                    "the server refused HELLO 3 and the redis crate's RESP2 pub/sub has no SSUBSCRIBE"
                        .to_owned(),
                ))),
                // Never subscribed on this connection.
                (false, SubscriptionKind::Shard) => Ok(()),
            },
            // The cluster connection routes shard channels to their slot's node.
            #[cfg(feature = "cluster")]
            SubscriberConnection::Cluster(conn) => match (subscribe, kind) {
                (true, SubscriptionKind::Channel) => conn.subscribe(name).await,
                (true, SubscriptionKind::Pattern) => conn.psubscribe(name).await,
                (true, SubscriptionKind::Shard) => conn.ssubscribe(name).await,
                (false, SubscriptionKind::Channel) => conn.unsubscribe(name).await,
                (false, SubscriptionKind::Pattern) => conn.punsubscribe(name).await,
                (false, SubscriptionKind::Shard) => conn.sunsubscribe(name).await,
            },
        }
    }

    pub(crate) async fn ping(&mut self) -> Result<(), redis::RedisError> {
        let ping = redis::cmd("PING");
        let _: Value = match self {
            SubscriberConnection::Single(conn) => ping.query_async(conn).await?,
            SubscriberConnection::Resp2(sink) => sink.ping().await?,
            #[cfg(feature = "cluster")]
            SubscriberConnection::Cluster(conn) => ping.query_async(conn).await?,
        };
        Ok(())
    }
}

pub(crate) struct Remote {
    endpoint: Endpoint,
    commands: Commands,
    transactions: tokio::sync::Mutex<Option<Commands>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) async fn connect(url: &str, options: &ConnectOptions) -> Result<Remote, Error> {
        let endpoint = Endpoint::parse(url, options)?;
        let commands = endpoint.shared().await?;
        Ok(Remote {
            endpoint,
            commands,
            transactions: tokio::sync::Mutex::new(None),
        })
    }

    /// Where subscribers connect to.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        Ok(self.commands.clone().query(cmd).await?)
    }

    pub(crate) async fn publish(
        &self,
        scope: Scope,
        channel: &str,
        payload: Bytes,
    ) -> Result<usize, Error> {
        let name = match scope {
            Scope::Classic => "PUBLISH",
            Scope::Shard => "SPUBLISH",
        };
        self.query(redis::cmd(name).arg(channel).arg(payload.as_ref()))
            .await
    }

    pub(crate) async fn subscriber_count(&self, channel: &str) -> Result<usize, Error> {
        let reply: Vec<(String, usize)> = self
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel))
            .await?;
        Ok(reply.first().map_or(0, |(_, count)| *count))
    }

    pub(crate) async fn active_channels(
        &self,
        pattern: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("CHANNELS");
        if let Some(pattern) = pattern {
            cmd.arg(pattern);
        }
        let mut channels: Vec<String> = self.query(&cmd).await?;
        // A cluster connection concatenates every node's list: a channel subscribed on
        // several nodes would appear once per node.
        channels.sort_unstable();
        channels.dedup();
        Ok(channels)
    }

    pub(crate) async fn pattern_count(&self) -> Result<usize, Error> {
        self.query(redis::cmd("PUBSUB").arg("NUMPAT")).await
    }

    /// MULTI; LPUSH key element; LTRIM key 0 cap-1; PUBLISH channel element; EXEC.
    pub(crate) async fn push_capped_and_publish(
        &self,
        key: &str,
        element: Bytes,
        cap: usize,
        channel: &str,
    ) -> Result<usize, Error> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("LPUSH")
            .arg(key)
            .arg(element.as_ref())
            .ignore()
            .cmd("LTRIM")
            .arg(key)
            .arg(0)
            .arg(cap as i64 - 1)
            .ignore()
            .cmd("PUBLISH")
            .arg(channel)
            .arg(element.as_ref());
        let (receivers,): (usize,) = match self.commands.clone() {
            // The crate routes PUBLISH by its channel, which would make this a cross-slot
            // pipeline; a cluster node accepts PUBLISH whatever the slot, so the whole
            // transaction goes to the node of the list's slot.
            #[cfg(feature = "cluster")]
            Commands::Cluster(mut conn) => {
                use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
                let route =
                    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                let replies = conn.route_pipeline(pipe, 4, 1, route).await?;
                exec_publish_count(replies)?
            }
            mut commands => commands.pipeline(&pipe).await?,
        };
        Ok(receivers)
    }

    pub(crate) async fn list_range(
        &self,
        key: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<Bytes>, Error> {
        let items: Vec<Vec<u8>> = self
            .query(redis::cmd("LRANGE").arg(key).arg(start).arg(stop))
            .await?;
        Ok(items.into_iter().map(Bytes::from).collect())
    }

    /// Replaces the first element for which `update` returns a new value, with
    /// WATCH/LRANGE/MULTI/LSET/EXEC, retrying from the start whenever EXEC is aborted
    /// because the list changed after WATCH. Returns false when no element matched.
    pub(crate) async fn update_list_element(
        &self,
        key: &str,
        update: &ElementUpdate<'_>,
    ) -> Result<bool, Error> {
        let mut slot = self.transactions.lock().await;
        let result = self.update_on(&mut slot, key, update).await;
        if result.is_err() {
            // The connection may hold a WATCH or half a transaction: never reuse it.
            *slot = None;
        }
        result
    }

    async fn update_on(
        &self,
        slot: &mut Option<Commands>,
        key: &str,
        update: &ElementUpdate<'_>,
    ) -> Result<bool, Error> {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(self.endpoint.dedicated().await?),
        };
        for _ in 0..MAX_OPTIMISTIC_ATTEMPTS {
            let () = conn.query(redis::cmd("WATCH").arg(key)).await?;
            let items: Vec<Vec<u8>> = conn
                .query(redis::cmd("LRANGE").arg(key).arg(0).arg(-1))
                .await?;
            let found = items
                .iter()
                .enumerate()
                .find_map(|(index, item)| update(item).map(|new| (index, new)));
            let Some((index, replacement)) = found else {
                let () = conn.query(&redis::cmd("UNWATCH")).await?;
                return Ok(false);
            };
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("LSET")
                .arg(key)
                .arg(index)
                .arg(replacement.as_ref());
            // EXEC replies nil when a watched key changed: someone wrote in between.
            let reply: Value = conn.pipeline(&pipe).await?;
            if !matches!(reply, Value::Nil) {
                return Ok(true);
            }
        }
        Err(Error::Contended {
            attempts: MAX_OPTIMISTIC_ATTEMPTS,
        })
    }
}

/// The PUBLISH count out of the raw EXEC reply `[LPUSH, LTRIM, PUBLISH]`.
#[cfg(feature = "cluster")]
fn exec_publish_count(mut replies: Vec<Value>) -> Result<(usize,), Error> {
    match replies.pop() {
        Some(Value::Array(items)) => match items.get(2) {
            Some(Value::Int(count)) => Ok((usize::try_from(*count).unwrap_or(0),)),
            other => Err(Error::UnexpectedReply(format!(
                "PUBLISH in EXEC: {other:?}"
            ))),
        },
        other => Err(Error::UnexpectedReply(format!("EXEC: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redacted("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redacted("rediss://app:s3cret@host/#insecure"),
            "rediss://app:***@host/#insecure"
        );
        assert_eq!(redacted("redis://s3cret@host"), "redis://***@host");
        assert_eq!(
            redacted("redis+cluster://u:p@a:1,b:2"),
            "redis+cluster://u:***@a:1,b:2"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
        assert_eq!(redacted("not a url"), "not a url");
        // An '@' after the authority is not user info.
        assert_eq!(redacted("redis://host/0?x=a@b"), "redis://host/0?x=a@b");
        let err = Endpoint::parse("redis://:s3cret@host:notaport", &ConnectOptions::default())
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("***"), "{err}");
    }
}
