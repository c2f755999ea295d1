//! The remote back end: commands to a Herald, Redis or Valkey server over the `redis` crate.
//!
//! Ordinary commands go through one [`ConnectionManager`] (multiplexed, reconnects on its
//! own). WATCH needs a connection nobody else writes to between WATCH and EXEC, so the
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
use crate::transport::{ElementUpdate, Scope};

/// How long one attempt to open a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command may wait for its reply before the call fails.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// WATCH/MULTI/EXEC rounds before an update gives up under constant contention.
pub(crate) const MAX_OPTIMISTIC_ATTEMPTS: u32 = 64;

pub(crate) struct Remote {
    /// The client as configured by the URL (RESP2 or RESP3, as the URL says).
    client: redis::Client,
    commands: ConnectionManager,
    transactions: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("addr", &self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) async fn connect(url: &str) -> Result<Remote, Error> {
        let client = redis::Client::open(url).map_err(|err| Error::InvalidUrl(err.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3);
        let commands = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Remote {
            client,
            commands,
            transactions: tokio::sync::Mutex::new(None),
        })
    }

    /// The same server, asking for RESP3 (subscribers need push frames).
    pub(crate) fn resp3_client(&self) -> Result<redis::Client, Error> {
        let info = self.client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        Ok(redis::Client::open(info.set_redis_settings(settings))?)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let mut conn = self.commands.clone();
        Ok(cmd.query_async(&mut conn).await?)
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
        let mut conn = self.commands.clone();
        let (receivers,): (usize,) = pipe.query_async(&mut conn).await?;
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
        slot: &mut Option<MultiplexedConnection>,
        key: &str,
        update: &ElementUpdate<'_>,
    ) -> Result<bool, Error> {
        let conn = match slot {
            Some(conn) => conn,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                slot.insert(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
        };
        for _ in 0..MAX_OPTIMISTIC_ATTEMPTS {
            let () = redis::cmd("WATCH").arg(key).query_async(conn).await?;
            let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(conn)
                .await?;
            let found = items
                .iter()
                .enumerate()
                .find_map(|(index, item)| update(item).map(|new| (index, new)));
            let Some((index, replacement)) = found else {
                let () = redis::cmd("UNWATCH").query_async(conn).await?;
                return Ok(false);
            };
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("LSET")
                .arg(key)
                .arg(index)
                .arg(replacement.as_ref());
            // EXEC replies nil when a watched key changed: someone wrote in between.
            let reply: Value = pipe.query_async(conn).await?;
            if !matches!(reply, Value::Nil) {
                return Ok(true);
            }
        }
        Err(Error::Contended {
            attempts: MAX_OPTIMISTIC_ATTEMPTS,
        })
    }
}
