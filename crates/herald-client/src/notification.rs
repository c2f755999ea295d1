//! [`NotificationService`]: per-user notifications that are published live and kept as
//! history.
//!
//! # Keys, channels and format
//! - A user's notifications are published on `notifications:user:<id>` and stored in the
//!   list `user:<id>:notifications`, newest first, capped at [`HISTORY_LIMIT`] entries.
//! - Broadcasts are published on `notifications:broadcast` and not stored.
//! - Each notification is one JSON object: `id` (UUID), `user_id` (null for broadcasts),
//!   `type` (`info`, `warning`, `error`, `success`), `title`, `message`, `timestamp`
//!   (ISO-8601 UTC), `read` and `data`, so services in other languages can read and
//!   write the same lists and channels.
//!
//! # Atomicity
//! Sending stores and publishes in one transaction: `MULTI; LPUSH; LTRIM; PUBLISH; EXEC`
//! on a server (works on Herald and Redis alike; Herald has no EVAL, so no script is
//! used), and one critical section under the keyspace lock when embedded. Nobody ever
//! sees a notification in the history that was not published, or the reverse.
//!
//! # Marking as read without lost updates
//! The list element to change has no stable index: a concurrent send pushes at the head
//! and shifts every index, and the trim may drop the oldest. [`NotificationService::mark_as_read`]
//! therefore locates the element by its `id`, never by a remembered position, and makes
//! the change optimistically on a server: `WATCH key`, `LRANGE key 0 -1`, find the
//! element whose id matches, then `MULTI; LSET key <index> <updated>; EXEC`. If anything
//! wrote the list between WATCH and EXEC (a send, a trim, another mark), EXEC is aborted
//! and the whole round is retried from the new contents, up to 64 times. So an LSET can
//! only ever apply to the index the element had when the list was read, and no other
//! writer's change is overwritten. Embedded, the read, the search and the LSET run in one
//! critical section under the keyspace lock, which gives the same guarantee directly.
//! The WATCH transactions use a connection of their own, so they never interleave with
//! the commands other tasks send on the shared connection.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, HandlerFailure};
use crate::handler::{Dispatch, HandlerOutput};
use crate::message::Message;
use crate::subscriber::{HandlerId, Subscriber, SubscriptionKind};
use crate::transport::Backend;
use crate::Herald;

/// Notifications kept per user (older ones are trimmed).
pub const HISTORY_LIMIT: usize = 100;
/// The channel of broadcasts.
pub const BROADCAST_CHANNEL: &str = "notifications:broadcast";

/// The four kinds of notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// Informational.
    Info,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
    /// Something succeeded.
    Success,
}

/// One notification, as stored and published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id (UUID v4).
    pub id: Uuid,
    /// The recipient; `None` for broadcasts.
    pub user_id: Option<String>,
    /// The kind.
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    /// A short title.
    pub title: String,
    /// The text.
    pub message: String,
    /// When it was sent, in UTC.
    #[serde(with = "crate::event::timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Whether the user has read it.
    pub read: bool,
    /// Application data (`null` when there is none).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The channel of `user_id`'s live notifications.
pub fn user_channel(user_id: &str) -> String {
    format!("notifications:user:{user_id}")
}

/// The list holding `user_id`'s history.
pub fn history_key(user_id: &str) -> String {
    format!("user:{user_id}:notifications")
}

/// Sends, stores, lists and marks notifications.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald_client::Error> {
/// use herald_client::{Herald, NotificationKind, NotificationService};
///
/// let herald = Herald::embedded();
/// let notifications = NotificationService::new(&herald);
/// let first = notifications
///     .send_to_user("42", NotificationKind::Info, "Welcome", "Hello!", None)
///     .await?;
/// notifications
///     .send_to_user("42", NotificationKind::Warning, "Quota", "90% used", Some(serde_json::json!({"used": 0.9})))
///     .await?;
/// assert_eq!(notifications.unread_count("42").await?, 2);
/// assert!(notifications.mark_as_read("42", first.id).await?);
/// let recent = notifications.recent("42", 10).await?;
/// assert_eq!(recent[0].title, "Quota");                // newest first
/// assert!(recent[1].read);
/// assert_eq!(notifications.unread_count("42").await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct NotificationService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    herald: Herald,
    subscriber: Mutex<Option<Subscriber>>,
}

fn notification_dispatch<F, Fut>(handler: F) -> Dispatch
where
    F: Fn(Notification) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    Arc::new(
        move |message: Message| match message.json::<Notification>() {
            Ok(notification) => handler(notification)
                .map(|output| output.into_result().map_err(HandlerFailure::Failed))
                .boxed(),
            Err(err) => futures_util::future::ready(Err(HandlerFailure::Decode(err))).boxed(),
        },
    )
}

impl NotificationService {
    /// The service on `herald`.
    pub fn new(herald: &Herald) -> Self {
        NotificationService {
            inner: Arc::new(Inner {
                herald: herald.clone(),
                subscriber: Mutex::new(None),
            }),
        }
    }

    /// Uses `subscriber` for [`NotificationService::subscribe_user`] and
    /// [`NotificationService::subscribe_broadcast`] instead of a default one.
    pub fn with_subscriber(self, subscriber: Subscriber) -> Self {
        *self.inner.subscriber.lock() = Some(subscriber);
        self
    }

    fn backend(&self) -> &Backend {
        &self.inner.herald.backend
    }

    /// The subscriber running the handlers (created on first use).
    pub fn subscriber(&self) -> Result<Subscriber, Error> {
        let mut slot = self.inner.subscriber.lock();
        if let Some(subscriber) = slot.as_ref() {
            return Ok(subscriber.clone());
        }
        let subscriber = self.inner.herald.subscriber()?;
        *slot = Some(subscriber.clone());
        Ok(subscriber)
    }

    fn build(
        user_id: Option<&str>,
        kind: NotificationKind,
        title: &str,
        message: &str,
        data: Option<serde_json::Value>,
    ) -> Notification {
        Notification {
            id: Uuid::new_v4(),
            user_id: user_id.map(str::to_owned),
            kind,
            title: title.to_owned(),
            message: message.to_owned(),
            timestamp: crate::event::now(),
            read: false,
            data: data.unwrap_or(serde_json::Value::Null),
        }
    }

    /// Stores a notification in `user_id`'s history and publishes it on the user's
    /// channel, atomically; returns it.
    pub async fn send_to_user(
        &self,
        user_id: &str,
        kind: NotificationKind,
        title: &str,
        message: &str,
        data: Option<serde_json::Value>,
    ) -> Result<Notification, Error> {
        let notification = Self::build(Some(user_id), kind, title, message, data);
        let encoded = Bytes::from(serde_json::to_vec(&notification)?);
        self.backend()
            .push_capped_and_publish(
                &history_key(user_id),
                encoded,
                HISTORY_LIMIT,
                &user_channel(user_id),
            )
            .await?;
        Ok(notification)
    }

    /// Publishes a notification to everyone on the broadcast channel (not stored).
    pub async fn broadcast(
        &self,
        kind: NotificationKind,
        title: &str,
        message: &str,
        data: Option<serde_json::Value>,
    ) -> Result<Notification, Error> {
        let notification = Self::build(None, kind, title, message, data);
        self.inner
            .herald
            .publisher()
            .publish_json(BROADCAST_CHANNEL, &notification)
            .await?;
        Ok(notification)
    }

    /// Calls `handler` for each notification sent to `user_id` from now on.
    pub async fn subscribe_user<F, Fut>(
        &self,
        user_id: &str,
        handler: F,
    ) -> Result<HandlerId, Error>
    where
        F: Fn(Notification) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.subscriber()?
            .add_dispatch(
                SubscriptionKind::Channel,
                &user_channel(user_id),
                notification_dispatch(handler),
            )
            .await
    }

    /// Calls `handler` for each broadcast from now on.
    pub async fn subscribe_broadcast<F, Fut>(&self, handler: F) -> Result<HandlerId, Error>
    where
        F: Fn(Notification) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.subscriber()?
            .add_dispatch(
                SubscriptionKind::Channel,
                BROADCAST_CHANNEL,
                notification_dispatch(handler),
            )
            .await
    }

    async fn history(&self, user_id: &str, limit: usize) -> Result<Vec<Notification>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = i64::try_from(limit).unwrap_or(i64::MAX).saturating_sub(1);
        let items = self
            .backend()
            .list_range(&history_key(user_id), 0, stop)
            .await?;
        let mut notifications = Vec::with_capacity(items.len());
        for item in items {
            match serde_json::from_slice(&item) {
                Ok(notification) => notifications.push(notification),
                // Someone else wrote this list: report it and show the rest.
                Err(err) => tracing::warn!(
                    user_id,
                    "herald-client: skipping a history entry that is not a notification: {err}"
                ),
            }
        }
        Ok(notifications)
    }

    /// Up to `limit` of `user_id`'s notifications, newest first.
    pub async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Notification>, Error> {
        self.history(user_id, limit.min(HISTORY_LIMIT)).await
    }

    /// How many of `user_id`'s stored notifications are unread.
    pub async fn unread_count(&self, user_id: &str) -> Result<usize, Error> {
        let all = self.history(user_id, HISTORY_LIMIT).await?;
        Ok(all.iter().filter(|notification| !notification.read).count())
    }

    /// Marks notification `id` of `user_id` as read; false when it is not in the history
    /// (never sent, or trimmed away). Safe against concurrent sends and marks: see the
    /// module docs.
    pub async fn mark_as_read(&self, user_id: &str, id: Uuid) -> Result<bool, Error> {
        let update = move |item: &[u8]| -> Option<Bytes> {
            let mut notification: Notification = serde_json::from_slice(item).ok()?;
            if notification.id != id {
                return None;
            }
            notification.read = true;
            serde_json::to_vec(&notification).ok().map(Bytes::from)
        };
        self.backend()
            .update_list_element(&history_key(user_id), &update)
            .await
    }

    /// Stops the handlers' subscriber, waiting for handlers in flight.
    pub async fn stop(&self) {
        let subscriber = self.inner.subscriber.lock().clone();
        if let Some(subscriber) = subscriber {
            subscriber.stop().await;
        }
    }
}
