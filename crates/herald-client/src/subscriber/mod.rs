//! [`Subscriber`]: handlers and message streams over channels, patterns and shard
//! channels, run by background tasks that survive reconnects.
//!
//! # How it runs
//! Two tasks per subscriber:
//! - the transport task owns the connection (a dedicated RESP3 connection for a remote
//!   server, or RESP2 pub/sub on a server that refuses `HELLO 3`; an engine outbox when
//!   embedded), makes the (un)subscriptions the API asks for, and forwards messages
//!   into a bounded queue. When the connection goes, it
//!   reports [`ConnectionEvent::Disconnected`], waits with [`Backoff`], reconnects and
//!   replays every subscription in the registry ([`ConnectionEvent::Resubscribed`]);
//! - the dispatcher takes one message at a time, in arrival order, and runs that
//!   subscription's handlers concurrently, each isolated (errors, panics and JSON decode
//!   failures are reported to `tracing` and the error callback, never propagated).
//!
//! A slow handler therefore delays later messages of this subscriber (spawn inside the
//! handler for long work). When the queue of [`SubscriberBuilder::queue_capacity`]
//! messages is full the subscriber behaves like a Redis slow consumer: it drops the
//! connection, reports why, reconnects and resubscribes; messages published meanwhile
//! are lost, and the event says so.
//!
//! On the RESP2 fallback everything above holds (events, backoff, health checks,
//! resubscription from the registry, handler isolation, `stop()`), except that shard
//! channels cannot be subscribed: [`Subscriber::ssubscribe`] fails with a clear error,
//! because the `redis` crate's RESP2 pub/sub has no SSUBSCRIBE. Cluster subscribers need
//! RESP3.
//!
//! This module must not block the runtime or hold a lock across an `.await`.

mod backoff;
mod core;
mod embedded;
mod remote;

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::FutureExt;
use futures_util::Stream;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use self::backoff::Backoff;
use self::core::{Command, Confirmation, Core, Target};
use crate::error::Error;
use crate::handler::{self, Dispatch, ErrorCallback, Handler, HandlerError, HandlerOutput};
use crate::message::Message;
use crate::transport::Backend;
use crate::Herald;

/// Messages waiting for the dispatcher before the subscriber counts as a slow consumer.
pub const DEFAULT_QUEUE_MESSAGES: usize = 10_000;
/// Messages a [`MessageStream`] buffers before it holds the dispatcher back.
pub const STREAM_BUFFER_MESSAGES: usize = 1024;
/// How often an idle remote connection is checked with PING.
pub const DEFAULT_HEALTH_CHECK: Duration = Duration::from_secs(15);
/// Connection events kept for a listener that is behind (older ones are skipped).
const EVENT_BUFFER: usize = 256;

/// The three kinds of subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// SUBSCRIBE: an exact channel.
    Channel,
    /// PSUBSCRIBE: a Redis glob pattern over channel names.
    Pattern,
    /// SSUBSCRIBE: an exact shard channel (SPUBLISH).
    Shard,
}

/// Identifies one registered handler (for [`Subscriber::remove_handler`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerId(pub(crate) u64);

/// What happened to a subscriber's connection, for logging and alerting
/// ([`Subscriber::events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A connection is up (the first one, or a new one after a disconnection).
    Connected,
    /// The connection was lost or dropped; `reason` says why.
    Disconnected {
        /// Why, as text ("connection closed", "PING failed: ...", "slow consumer: ...").
        reason: String,
    },
    /// An attempt to connect failed; the next one comes after `retry_in`.
    ConnectFailed {
        /// How many attempts failed in a row.
        attempt: u32,
        /// The error.
        error: String,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// After a reconnect, every subscription of the registry was made again.
    Resubscribed {
        /// Channels resubscribed.
        channels: usize,
        /// Patterns resubscribed.
        patterns: usize,
        /// Shard channels resubscribed.
        shard_channels: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) backoff: Backoff,
    pub(crate) health_check: Duration,
    pub(crate) queue_capacity: usize,
}

/// Configures a [`Subscriber`]; [`Herald::subscriber`] uses the defaults.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald_client::Error> {
/// use std::time::Duration;
/// use herald_client::{Backoff, Herald, Subscriber};
///
/// let herald = Herald::embedded();
/// let subscriber = Subscriber::builder(&herald)
///     .backoff(Backoff { initial: Duration::from_millis(50), ..Backoff::default() })
///     .on_error(|report| eprintln!("handler trouble: {report}"))
///     .build()?;
/// subscriber.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct SubscriberBuilder {
    herald: Herald,
    options: Options,
    on_error: Option<ErrorCallback>,
}

impl SubscriberBuilder {
    /// Reconnect delays (default: 100 ms doubling to 5 s, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.options.backoff = backoff;
        self
    }

    /// How often an idle remote connection is checked with PING (default 15 s).
    pub fn health_check(mut self, interval: Duration) -> Self {
        self.options.health_check = interval.max(Duration::from_millis(10));
        self
    }

    /// Messages that may wait for handlers before the subscriber counts as a slow
    /// consumer and reconnects (default [`DEFAULT_QUEUE_MESSAGES`]).
    pub fn queue_capacity(mut self, messages: usize) -> Self {
        self.options.queue_capacity = messages.max(1);
        self
    }

    /// Called for every handler error, panic and decode failure (besides the `tracing`
    /// warning). It runs on the dispatcher: keep it short.
    pub fn on_error(mut self, callback: impl Fn(&HandlerError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Starts the subscriber's background tasks. Fails outside a Tokio runtime.
    pub fn build(self) -> Result<Subscriber, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let core = Arc::new(Core::new(commands_tx, events, self.on_error));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (inbound_tx, inbound_rx) = mpsc::channel(self.options.queue_capacity);
        let link = Link {
            core: Arc::clone(&core),
            commands: commands_rx,
            inbound: inbound_tx,
            stop: stop_rx.clone(),
            options: self.options,
        };
        let transport = match &*self.herald.backend {
            Backend::Remote(remote) => runtime.spawn(remote::run(remote.endpoint().clone(), link)),
            Backend::Embedded(_) => {
                runtime.spawn(embedded::run(Arc::clone(&self.herald.backend), link))
            }
        };
        let dispatcher =
            runtime.spawn(core::run_dispatcher(Arc::clone(&core), inbound_rx, stop_rx));
        Ok(Subscriber {
            inner: Arc::new(Inner {
                core,
                stop: stop_tx,
                tasks: Mutex::new(Some((transport, dispatcher))),
            }),
        })
    }
}

/// What a transport task gets to work with.
pub(crate) struct Link {
    pub(crate) core: Arc<Core>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) inbound: mpsc::Sender<Message>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) options: Options,
}

impl Link {
    pub(crate) fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Resolves once the subscriber is told to stop (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it before anything else awaits.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}

/// Counts the targets of a resubscription by kind.
pub(crate) fn resubscribed(targets: &[Target]) -> ConnectionEvent {
    let count = |kind| targets.iter().filter(|target| target.kind == kind).count();
    ConnectionEvent::Resubscribed {
        channels: count(SubscriptionKind::Channel),
        patterns: count(SubscriptionKind::Pattern),
        shard_channels: count(SubscriptionKind::Shard),
    }
}

struct Inner {
    core: Arc<Core>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: let the tasks end on their own.
        self.core.close();
        let _ = self.stop.send(true);
    }
}

/// Receives messages and hands them to handlers or streams, in the background.
///
/// Cloning gives another handle to the same subscriber. Dropping the last handle stops
/// it without waiting; [`Subscriber::stop`] waits for handlers in flight.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald_client::Error> {
/// use futures_util::StreamExt;
/// use herald_client::{Herald, Message};
///
/// let herald = Herald::embedded();
/// let subscriber = herald.subscriber()?;
/// subscriber
///     .subscribe("news", |msg: Message| async move {
///         println!("handler: {:?}", msg.payload_str());
///     })
///     .await?;
/// let mut updates = subscriber.pstream("news.*").await?;
///
/// let publisher = herald.publisher();
/// assert_eq!(publisher.publish("news", "hello").await?, 1);
/// publisher.publish("news.eu", "bonjour").await?;
/// let msg = updates.next().await.unwrap();
/// assert_eq!((msg.channel.as_str(), msg.payload_str()), ("news.eu", Some("bonjour")));
///
/// subscriber.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Subscriber {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("subscriptions", &self.inner.core.targets().len())
            .finish_non_exhaustive()
    }
}

async fn confirmed(receiver: Option<Confirmation>) -> Result<(), Error> {
    match receiver {
        Some(receiver) => receiver.await.map_err(|_| Error::Stopped)?,
        None => Ok(()),
    }
}

impl Subscriber {
    /// A builder with the default options.
    pub fn builder(herald: &Herald) -> SubscriberBuilder {
        SubscriberBuilder {
            herald: herald.clone(),
            options: Options {
                backoff: Backoff::default(),
                health_check: DEFAULT_HEALTH_CHECK,
                queue_capacity: DEFAULT_QUEUE_MESSAGES,
            },
            on_error: None,
        }
    }

    async fn add(
        &self,
        kind: SubscriptionKind,
        name: &str,
        dispatch: Dispatch,
    ) -> Result<HandlerId, Error> {
        let target = Target {
            kind,
            name: name.to_owned(),
        };
        let (id, confirmation) = self.inner.core.add(target, dispatch)?;
        if let Err(err) = confirmed(confirmation).await {
            // The server refused (or we stopped): do not keep retrying it on reconnects.
            let _ = self.inner.core.remove_handler(id);
            return Err(err);
        }
        Ok(id)
    }

    /// Adds `handler` for messages on `channel` (SUBSCRIBE on the first handler). Returns
    /// once the server confirmed the subscription; while the server is unreachable, once
    /// the next connection has made it (wrap the call in a timeout to bound the wait; the
    /// subscription stays recorded either way). Fails with the server's error when it
    /// refuses (e.g. NOPERM), and then nothing is kept. Several handlers per channel are
    /// fine; each gets every message.
    pub async fn subscribe(
        &self,
        channel: &str,
        handler: impl Handler,
    ) -> Result<HandlerId, Error> {
        self.add(SubscriptionKind::Channel, channel, handler::plain(handler))
            .await
    }

    /// Adds `handler` for channels matching the Redis glob `pattern` (PSUBSCRIBE).
    pub async fn psubscribe(
        &self,
        pattern: &str,
        handler: impl Handler,
    ) -> Result<HandlerId, Error> {
        self.add(SubscriptionKind::Pattern, pattern, handler::plain(handler))
            .await
    }

    /// Adds `handler` for the shard channel `channel` (SSUBSCRIBE; SPUBLISH reaches it).
    /// Fails on a server that refused `HELLO 3` (the RESP2 fallback has no SSUBSCRIBE).
    pub async fn ssubscribe(
        &self,
        channel: &str,
        handler: impl Handler,
    ) -> Result<HandlerId, Error> {
        self.add(SubscriptionKind::Shard, channel, handler::plain(handler))
            .await
    }

    /// Adds a handler of `T` decoded from each payload's JSON. A payload that does not
    /// decode is reported as [`crate::HandlerFailure::Decode`] and the handler is not called.
    pub async fn subscribe_json<T, F, Fut>(
        &self,
        channel: &str,
        handler: F,
    ) -> Result<HandlerId, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.add(SubscriptionKind::Channel, channel, handler::json(handler))
            .await
    }

    /// [`Subscriber::subscribe_json`] for a pattern.
    pub async fn psubscribe_json<T, F, Fut>(
        &self,
        pattern: &str,
        handler: F,
    ) -> Result<HandlerId, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutput,
    {
        self.add(SubscriptionKind::Pattern, pattern, handler::json(handler))
            .await
    }

    /// Subscribes through an erased handler (the event bus and notifications use this).
    pub(crate) async fn add_dispatch(
        &self,
        kind: SubscriptionKind,
        name: &str,
        dispatch: Dispatch,
    ) -> Result<HandlerId, Error> {
        self.add(kind, name, dispatch).await
    }

    async fn stream_of(&self, kind: SubscriptionKind, name: &str) -> Result<MessageStream, Error> {
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER_MESSAGES);
        let dispatch: Dispatch = Arc::new(move |message| {
            let sender = sender.clone();
            async move {
                // A closed stream is being dropped; its guard removes this handler.
                let _ = sender.send(message).await;
                Ok(())
            }
            .boxed()
        });
        let id = self.add(kind, name, dispatch).await?;
        Ok(MessageStream {
            receiver,
            core: Arc::downgrade(&self.inner.core),
            id,
        })
    }

    /// A stream of the messages on `channel`, for `while let Some(msg) = stream.next().await`.
    /// Dropping the stream removes its subscription. A stream nobody reads holds the
    /// dispatcher back once [`STREAM_BUFFER_MESSAGES`] wait in it.
    pub async fn stream(&self, channel: &str) -> Result<MessageStream, Error> {
        self.stream_of(SubscriptionKind::Channel, channel).await
    }

    /// A stream of the messages on channels matching `pattern`.
    pub async fn pstream(&self, pattern: &str) -> Result<MessageStream, Error> {
        self.stream_of(SubscriptionKind::Pattern, pattern).await
    }

    /// A stream of the messages on the shard channel `channel`.
    pub async fn sstream(&self, channel: &str) -> Result<MessageStream, Error> {
        self.stream_of(SubscriptionKind::Shard, channel).await
    }

    async fn remove(&self, kind: SubscriptionKind, name: &str) -> Result<(), Error> {
        let target = Target {
            kind,
            name: name.to_owned(),
        };
        confirmed(self.inner.core.remove_target(target)).await
    }

    /// Removes every handler and stream of `channel` and unsubscribes (UNSUBSCRIBE).
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), Error> {
        self.remove(SubscriptionKind::Channel, channel).await
    }

    /// Removes every handler and stream of `pattern` (PUNSUBSCRIBE).
    pub async fn punsubscribe(&self, pattern: &str) -> Result<(), Error> {
        self.remove(SubscriptionKind::Pattern, pattern).await
    }

    /// Removes every handler and stream of the shard channel `channel` (SUNSUBSCRIBE).
    pub async fn sunsubscribe(&self, channel: &str) -> Result<(), Error> {
        self.remove(SubscriptionKind::Shard, channel).await
    }

    /// Removes one handler; the subscription goes when it was the last one.
    pub async fn remove_handler(&self, id: HandlerId) -> Result<(), Error> {
        confirmed(self.inner.core.remove_handler(id)).await
    }

    /// What this subscriber is subscribed to (what it replays after a reconnect).
    pub fn subscriptions(&self) -> Vec<(SubscriptionKind, String)> {
        self.inner
            .core
            .targets()
            .into_iter()
            .map(|target| (target.kind, target.name))
            .collect()
    }

    /// Connection events from now on. A listener more than 256 events behind skips the
    /// oldest (it gets `RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.core.events.subscribe()
    }

    /// Stops the subscriber: no new subscriptions, the connection is closed, handlers in
    /// flight finish, and messages not yet dispatched are dropped. Streams then end.
    /// Calling it again (or on a clone) returns at once.
    pub async fn stop(&self) {
        self.inner.core.close();
        let _ = self.inner.stop.send(true);
        let tasks = self.inner.tasks.lock().take();
        if let Some((transport, dispatcher)) = tasks {
            for (name, task) in [("transport", transport), ("dispatcher", dispatcher)] {
                if let Err(err) = task.await {
                    tracing::error!("herald-client: the subscriber's {name} task failed: {err}");
                }
            }
        }
        self.inner.core.clear();
    }
}

/// A stream of messages of one subscription ([`Subscriber::stream`] and friends).
///
/// Ends when the subscriber stops. Dropping it removes the subscription.
#[derive(Debug)]
pub struct MessageStream {
    receiver: mpsc::Receiver<Message>,
    core: Weak<Core>,
    id: HandlerId,
}

impl Stream for MessageStream {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.receiver.poll_recv(cx)
    }
}

impl Drop for MessageStream {
    fn drop(&mut self) {
        if let Some(core) = self.core.upgrade() {
            // Unsubscribes in the background when this was the last handler.
            let _ = core.remove_handler(self.id);
        }
    }
}
