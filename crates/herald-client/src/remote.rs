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
    Single(redis::Client),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

/// The URL schemes naming a cluster: `redis+cluster://[user:pw@]host:port,host:port`.
#[cfg(feature = "cluster")]
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis"),
    ("rediss+cluster://", "rediss"),
];

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint, Error> {
        #[cfg(feature = "cluster")]
        for (prefix, scheme) in CLUSTER_SCHEMES {
            if let Some(rest) = url.strip_prefix(prefix) {
                return cluster_nodes(rest, scheme).map(Endpoint::Cluster);
            }
        }
        if url.contains("+cluster://") {
            return Err(Error::InvalidUrl(format!(
                "{url}: cluster URLs need herald-client's `cluster` feature"
            )));
        }
        redis::Client::open(url)
            .map(Endpoint::Single)
            .map_err(|err| Error::InvalidUrl(format!("{url}: {err}")))
    }

    #[cfg(feature = "cluster")]
    fn cluster_client(
        nodes: &[String],
        configure: impl FnOnce(
            redis::cluster::ClusterClientBuilder,
        ) -> redis::cluster::ClusterClientBuilder,
    ) -> Result<redis::cluster::ClusterClient, redis::RedisError> {
        let builder = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT);
        configure(builder).build()
    }

    async fn shared(&self) -> Result<Commands, Error> {
        Ok(match self {
            Endpoint::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(3);
                Commands::Single(ConnectionManager::new_with_config(client.clone(), config).await?)
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(nodes) => Commands::Cluster(
                Self::cluster_client(nodes, |builder| builder)?
                    .get_async_connection()
                    .await?,
            ),
        })
    }

    /// A connection used by nobody else (for WATCH).
    async fn dedicated(&self) -> Result<Commands, Error> {
        Ok(match self {
            Endpoint::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                Commands::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            #[cfg(feature = "cluster")]
            Endpoint::Cluster(_) => self.shared().await?,
        })
    }

    /// A RESP3 connection delivering pushes to `push` (what subscribers use).
    pub(crate) async fn subscriber_connection(
        &self,
        push: impl redis::aio::AsyncPushSender,
    ) -> Result<SubscriberConnection, redis::RedisError> {
        match self {
            Endpoint::Single(client) => {
                let info = client.get_connection_info().clone();
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(settings))?;
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
            Endpoint::Cluster(nodes) => Ok(SubscriberConnection::Cluster(
                Self::cluster_client(nodes, |builder| {
                    builder
                        .use_protocol(ProtocolVersion::RESP3)
                        .push_sender(push)
                })?
                .get_async_connection()
                .await?,
            )),
        }
    }
}

/// `host:port,host:port` (with optional `user:pw@` for all) as one URL per node.
#[cfg(feature = "cluster")]
fn cluster_nodes(rest: &str, scheme: &str) -> Result<Vec<String>, Error> {
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
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{credentials}{host}/"))
        .collect();
    if nodes.is_empty() {
        return Err(Error::InvalidUrl(
            "a cluster URL needs at least one host:port".into(),
        ));
    }
    for node in &nodes {
        redis::Client::open(node.as_str())
            .map_err(|err| Error::InvalidUrl(format!("{node}: {err}")))?;
    }
    Ok(nodes)
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
    Single(MultiplexedConnection),
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
    pub(crate) async fn connect(url: &str) -> Result<Remote, Error> {
        let endpoint = Endpoint::parse(url)?;
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
        self.query(&cmd).await
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
