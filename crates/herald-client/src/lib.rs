//! `herald-client`: publish, subscribe, typed events and user notifications for Rust
//! applications, against a Herald server, a Redis or Valkey server, or embedded in the
//! process with no server at all. The same types work on every back end.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), herald_client::Error> {
//! use herald_client::{Herald, Message};
//!
//! // Herald::connect("redis://127.0.0.1:6379").await? for a server; the rest is the same.
//! let herald = Herald::embedded();
//! let subscriber = herald.subscriber()?;
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! subscriber
//!     .subscribe("greetings", move |msg: Message| {
//!         let tx = tx.clone();
//!         async move { let _ = tx.send(msg.payload_str().map(str::to_owned)); }
//!     })
//!     .await?;
//! herald.publisher().publish("greetings", "hello").await?;
//! assert_eq!(rx.recv().await.flatten().as_deref(), Some("hello"));
//! subscriber.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`Herald`] (this file): the handle on one back end; makes the other types.
//!   [`connect`]: [`ConnectOptions`], the TLS certificates of [`Herald::connect_with`].
//! - [`publisher`]: [`Publisher`], PUBLISH/SPUBLISH and PUBSUB introspection.
//! - [`subscriber`]: [`Subscriber`], its handlers and streams, reconnects and
//!   [`ConnectionEvent`]s; `subscriber::{remote, embedded}` are its two transports.
//! - [`event`] and [`event_bus`]: the JSON event envelope and the [`EventBus`].
//! - [`notification`]: the [`NotificationService`] and its storage design.
//! - [`handler`]: what a handler is and how its failures are reported; [`message`]: the
//!   received [`Message`]; [`error`]: [`Error`] and [`HandlerFailure`].
//! - `transport`: the one internal seam between the API and the back ends, `remote`
//!   (the `redis` crate) and `embedded` (`herald-engine` and `herald-store` in process).
//!
//! This crate does not implement a Redis client: remote I/O is the `redis` crate's. It
//! does not depend on `herald-server`: embedded mode uses the engine and store directly.

pub mod connect;
pub mod error;
pub mod event;
pub mod event_bus;
pub mod handler;
pub mod message;
pub mod notification;
pub mod publisher;
pub mod subscriber;

mod credentials;
mod embedded;
mod remote;
mod transport;

use std::sync::Arc;

use herald_engine::Engine;
use herald_store::Store;

pub use connect::ConnectOptions;
pub use error::{BoxError, Error, HandlerFailure};
pub use event::Event;
pub use event_bus::EventBus;
pub use handler::{Handler, HandlerError, HandlerOutput};
pub use message::{Message, MessageKind};
pub use notification::{Notification, NotificationKind, NotificationService};
pub use publisher::Publisher;
pub use subscriber::{
    Backoff, ConnectionEvent, HandlerId, MessageStream, Subscriber, SubscriberBuilder,
    SubscriptionKind,
};

use transport::Backend;

/// A handle on one back end: a remote server or the embedded engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Herald {
    backend: Arc<Backend>,
}

impl Herald {
    /// Connects to a Herald, Redis or Valkey server:
    /// - `redis://[user:password@]host[:port][/db]` (add `?protocol=resp3` for RESP3
    ///   commands), or `redis+unix:///path/to/socket`;
    /// - `rediss://...` for TLS (feature `tls`, on by default; rustls with the ring
    ///   provider). The server's certificate must chain to a system root certificate and
    ///   name the host; [`Herald::connect_with`] trusts a CA of your own or presents a
    ///   client certificate. `rediss://host:port/#insecure` skips certificate verification
    ///   altogether: for tests only;
    /// - `redis+cluster://[user:password@]host:port,host:port,...` for a Redis or Valkey
    ///   Cluster (the seed nodes; feature `cluster`, on by default), and
    ///   `rediss+cluster://...[#insecure]` for a cluster over TLS.
    ///
    /// Subscribers use RESP3 pushes where the server speaks RESP3 (Herald, Redis 6+,
    /// Valkey) and fall back to RESP2 pub/sub on one that refuses `HELLO 3`, where shard
    /// channels are not available (see [`crate::subscriber`]).
    ///
    /// Fails when the URL is malformed or the server cannot be reached now (including a
    /// TLS handshake the server's certificate fails: [`Error::is_connection_error`] is
    /// true and the message names the certificate problem); later losses are retried by
    /// each type.
    pub async fn connect(url: &str) -> Result<Herald, Error> {
        Self::connect_with(url, &ConnectOptions::default()).await
    }

    /// [`Herald::connect`] with options: the TLS CA certificates to trust and a client
    /// certificate to present (both need a `rediss://` URL, or the call fails with
    /// [`Error::InvalidUrl`]; malformed PEM fails the same way).
    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Herald, Error> {
        Ok(Herald {
            backend: Arc::new(Backend::Remote(
                remote::Remote::connect(url, options).await?,
            )),
        })
    }

    /// A private in-process engine and keyspace: no network, nothing to run.
    pub fn embedded() -> Herald {
        Self::embedded_with(Arc::new(Engine::new()), Arc::new(Store::new()))
    }

    /// In-process over an engine and store you share with other front-ends (a Herald
    /// server or gateway running in the same process publishes to the same subscribers).
    pub fn embedded_with(engine: Arc<Engine>, store: Arc<Store>) -> Herald {
        Herald {
            backend: Arc::new(Backend::Embedded(embedded::Embedded::new(engine, store))),
        }
    }

    /// True for [`Herald::embedded`] handles.
    pub fn is_embedded(&self) -> bool {
        matches!(&*self.backend, Backend::Embedded(_))
    }

    /// A publisher sharing this handle's connection.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(Arc::clone(&self.backend))
    }

    /// A subscriber with default options ([`Subscriber::builder`] for others). Its
    /// background tasks start at once, so this needs a running Tokio runtime.
    pub fn subscriber(&self) -> Result<Subscriber, Error> {
        Subscriber::builder(self).build()
    }

    /// An event bus with the default `events:` prefix.
    pub fn event_bus(&self) -> EventBus {
        EventBus::new(self)
    }

    /// The notification service.
    pub fn notifications(&self) -> NotificationService {
        NotificationService::new(self)
    }
}
