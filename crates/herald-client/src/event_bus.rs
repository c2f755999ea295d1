//! [`EventBus`]: typed events on channels `<prefix><type>`, in the envelope of
//! [`crate::event`], interoperable with any service that writes the same JSON.

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, HandlerFailure};
use crate::event::Event;
use crate::handler::{Dispatch, HandlerOutput};
use crate::message::Message;
use crate::publisher::Publisher;
use crate::subscriber::{HandlerId, Subscriber, SubscriptionKind};
use crate::Herald;

/// The channel prefix unless another is given.
pub const DEFAULT_PREFIX: &str = "events:";

/// Emits events and calls typed handlers for them.
///
/// Event `user.created` travels on channel `events:user.created` (with the default
/// prefix) as `{"type": "user.created", "timestamp": "...", "data": {...}}`. Handlers
/// receive the whole [`Event`] with `data` decoded into their type; an event whose data
/// does not decode is reported as a decode error and the handler is not called.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald_client::Error> {
/// use herald_client::{Event, EventBus, Herald};
/// use serde::{Deserialize, Serialize};
/// use tokio::sync::mpsc;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct UserCreated { id: u64, name: String }
///
/// let herald = Herald::embedded();
/// let bus = EventBus::new(&herald);
/// let (seen, mut seen_rx) = mpsc::unbounded_channel();
/// bus.on("user.created", move |event: Event<UserCreated>| {
///     let seen = seen.clone();
///     async move { let _ = seen.send(event.data.name); }
/// }).await?;
/// bus.on_pattern("user.*", |event: Event| async move {
///     println!("{} at {}", event.event_type, event.timestamp);
/// }).await?;
///
/// let receivers = bus.emit("user.created", &UserCreated { id: 1, name: "ada".into() }).await?;
/// assert_eq!(receivers, 2);
/// assert_eq!(seen_rx.recv().await.as_deref(), Some("ada"));
/// bus.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    herald: Herald,
    publisher: Publisher,
    prefix: String,
    subscriber: Mutex<Option<Subscriber>>,
}

/// `text` with Redis glob metacharacters escaped, so it matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn event_dispatch<T, F, Fut>(handler: F) -> Dispatch
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    Arc::new(move |message: Message| match message.json::<Event<T>>() {
        Ok(event) => handler(event)
            .map(|output| output.into_result().map_err(HandlerFailure::Failed))
            .boxed(),
        Err(err) => futures_util::future::ready(Err(HandlerFailure::Decode(err))).boxed(),
    })
}

impl EventBus {
    /// A bus on `herald` with the prefix `events:`.
    pub fn new(herald: &Herald) -> Self {
        Self::with_prefix(herald, DEFAULT_PREFIX)
    }

    /// A bus whose channels are `prefix` followed by the event type.
    pub fn with_prefix(herald: &Herald, prefix: impl Into<String>) -> Self {
        EventBus {
            inner: Arc::new(Inner {
                herald: herald.clone(),
                publisher: herald.publisher(),
                prefix: prefix.into(),
                subscriber: Mutex::new(None),
            }),
        }
    }

    /// Uses `subscriber` (configured as you like) for the handlers instead of a default
    /// one created on the first [`EventBus::on`].
    pub fn with_subscriber(self, subscriber: Subscriber) -> Self {
        *self.inner.subscriber.lock() = Some(subscriber);
        self
    }

    /// The channel prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The channel events of `event_type` travel on.
    pub fn channel(&self, event_type: &str) -> String {
        format!("{}{event_type}", self.inner.prefix)
    }

    /// The subscriber running this bus's handlers (created on first use), e.g. to watch
    /// its [`Subscriber::events`].
    pub fn subscriber(&self) -> Result<Subscriber, Error> {
        let mut slot = self.inner.subscriber.lock();
        if let Some(subscriber) = slot.as_ref() {
            return Ok(subscriber.clone());
        }
        let subscriber = self.inner.herald.subscriber()?;
        *slot = Some(subscriber.clone());
        Ok(subscriber)
    }

    /// Emits an event of `event_type` with `data`, stamped now; returns the receivers.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event_type: &str,
        data: &T,
    ) -> Result<usize, Error> {
        let event = Event::new(event_type, data);
        self.inner
            .publisher
            .publish_json(&self.channel(event_type), &event)
            .await
    }

    /// Calls `handler` for every event of `event_type`, with `data` decoded into `T`
    /// (`serde_json::Value` takes anything).
    pub async fn on<T, F, Fut>(&self, event_type: &str, handler: F) -> Result<HandlerId, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.subscriber()?
            .add_dispatch(
                SubscriptionKind::Channel,
                &self.channel(event_type),
                event_dispatch(handler),
            )
            .await
    }

    /// Calls `handler` for every event whose type matches the Redis glob `pattern`
    /// (`user.*`); [`Event::event_type`] says which it was. The prefix is matched
    /// literally even if it contains glob characters.
    pub async fn on_pattern<T, F, Fut>(&self, pattern: &str, handler: F) -> Result<HandlerId, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        let pattern = format!("{}{pattern}", glob_escape(&self.inner.prefix));
        self.subscriber()?
            .add_dispatch(SubscriptionKind::Pattern, &pattern, event_dispatch(handler))
            .await
    }

    /// Removes every handler of `event_type`.
    pub async fn off(&self, event_type: &str) -> Result<(), Error> {
        self.subscriber()?
            .unsubscribe(&self.channel(event_type))
            .await
    }

    /// Removes every handler of `pattern` (as given to [`EventBus::on_pattern`]).
    pub async fn off_pattern(&self, pattern: &str) -> Result<(), Error> {
        let pattern = format!("{}{pattern}", glob_escape(&self.inner.prefix));
        self.subscriber()?.punsubscribe(&pattern).await
    }

    /// Stops the handlers' subscriber, waiting for handlers in flight.
    pub async fn stop(&self) {
        let subscriber = self.inner.subscriber.lock().clone();
        if let Some(subscriber) = subscriber {
            subscriber.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_escaped_for_patterns() {
        assert_eq!(glob_escape("events:"), "events:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        let glob = herald_engine::Glob::new(format!("{}x", glob_escape("p*[")).as_bytes());
        assert!(glob.matches(b"p*[x"));
        assert!(!glob.matches(b"pZ[x"));
    }
}
