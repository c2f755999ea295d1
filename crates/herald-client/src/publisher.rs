//! [`Publisher`]: PUBLISH, SPUBLISH and PUBSUB introspection.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::error::Error;
use crate::event::Event;
use crate::transport::{Backend, Scope};

/// Publishes messages and asks who listens. Cheap to clone; all clones share the
/// connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald_client::Error> {
/// use herald_client::Herald;
///
/// let herald = Herald::embedded();
/// let publisher = herald.publisher();
/// assert_eq!(publisher.publish("news", "nobody listens yet").await?, 0);
/// publisher.publish_json("orders", &serde_json::json!({"id": 1})).await?;
/// assert_eq!(publisher.subscriber_count("news").await?, 0);
/// assert_eq!(publisher.pattern_count().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Publisher {
    backend: Arc<Backend>,
}

impl Publisher {
    pub(crate) fn new(backend: Arc<Backend>) -> Self {
        Publisher { backend }
    }

    /// PUBLISH: sends `payload` on `channel`; returns how many subscriptions received it
    /// (a client subscribed by channel and by pattern counts twice, as in Redis).
    ///
    /// **On a Redis Cluster the count is one node's**: the command goes to the primary
    /// owning the channel's hash slot, and Redis counts only the subscriptions made on that
    /// node. Subscribers connected to other nodes do get the message (over the cluster
    /// bus) but are not counted, so 0 does not mean that nobody received it. For an exact
    /// count use a shard channel ([`Publisher::spublish`]: every subscriber of a shard
    /// channel is on its slot's node); [`Publisher::subscriber_count`] sums every node's
    /// channel subscribers, but apart from the publish and so racy.
    pub async fn publish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<usize, Error> {
        self.backend
            .publish(Scope::Classic, channel, payload.into())
            .await
    }

    /// SPUBLISH: sends `payload` on the shard channel `channel`; returns how many
    /// subscriptions received it, exact on a cluster too.
    pub async fn spublish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<usize, Error> {
        self.backend
            .publish(Scope::Shard, channel, payload.into())
            .await
    }

    /// Publishes `value` encoded as JSON.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        value: &T,
    ) -> Result<usize, Error> {
        self.publish(channel, serde_json::to_vec(value)?).await
    }

    /// Publishes an [`Event`] envelope on `channel` (the [`crate::EventBus`] picks the
    /// channel from the event type; this publishes wherever you say).
    pub async fn publish_event<T: Serialize>(
        &self,
        channel: &str,
        event: &Event<T>,
    ) -> Result<usize, Error> {
        self.publish_json(channel, event).await
    }

    /// PUBSUB NUMSUB: subscribers of `channel` (pattern subscribers not counted); on a
    /// cluster, the sum over every node.
    pub async fn subscriber_count(&self, channel: &str) -> Result<usize, Error> {
        self.backend.subscriber_count(channel).await
    }

    /// PUBSUB CHANNELS: channels with at least one subscriber, optionally only those
    /// matching the Redis glob `pattern`. On a cluster, every node's, each name once.
    pub async fn active_channels(&self, pattern: Option<&str>) -> Result<Vec<String>, Error> {
        self.backend.active_channels(pattern).await
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed by anyone; on a cluster, the sum of
    /// every node's count (a pattern subscribed on two nodes counts twice).
    pub async fn pattern_count(&self) -> Result<usize, Error> {
        self.backend.pattern_count().await
    }
}
