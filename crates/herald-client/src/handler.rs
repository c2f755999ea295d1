//! What a subscriber calls: message handlers, the values they may return, and the report
//! an application's error callback receives when a handler fails.
//!
//! Handlers are async closures. Each public registration erases its closure into one
//! shape (`Dispatch`) so the subscriber treats plain, JSON and event handlers alike;
//! decoding happens inside the erased closure, so a payload that does not decode becomes
//! a [`HandlerFailure::Decode`] report instead of a call.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, HandlerFailure};
use crate::message::Message;

/// What a handler may return: `()` or `Result<(), E>` for any error type `E`.
pub trait HandlerOutput: Send + 'static {
    /// The outcome as a result.
    fn into_result(self) -> Result<(), BoxError>;
}

impl HandlerOutput for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> HandlerOutput for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// A message handler: any `Fn(Message) -> impl Future` whose output is a [`HandlerOutput`].
///
/// ```
/// # fn assert_handler<H: herald_client::Handler>(_: H) {}
/// assert_handler(|msg: herald_client::Message| async move {
///     println!("{} says {:?}", msg.channel, msg.payload_str());
/// });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles one message.
    fn call(&self, message: Message) -> BoxFuture<'static, Result<(), BoxError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    fn call(&self, message: Message) -> BoxFuture<'static, Result<(), BoxError>> {
        self(message).map(HandlerOutput::into_result).boxed()
    }
}

/// The erased form every registration is stored in.
pub(crate) type Dispatch =
    Arc<dyn Fn(Message) -> BoxFuture<'static, Result<(), HandlerFailure>> + Send + Sync>;

pub(crate) fn plain(handler: impl Handler) -> Dispatch {
    Arc::new(move |message| {
        handler
            .call(message)
            .map(|result| result.map_err(HandlerFailure::Failed))
            .boxed()
    })
}

/// A handler of payloads decoded from JSON into `T`.
pub(crate) fn json<T, F, Fut>(handler: F) -> Dispatch
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    Arc::new(move |message: Message| match message.json::<T>() {
        Ok(value) => handler(value)
            .map(|output| output.into_result().map_err(HandlerFailure::Failed))
            .boxed(),
        Err(err) => futures_util::future::ready(Err(HandlerFailure::Decode(err))).boxed(),
    })
}

/// A report of one message a handler did not handle cleanly.
#[derive(Debug)]
pub struct HandlerError {
    /// The message concerned.
    pub message: Message,
    /// What went wrong.
    pub failure: HandlerFailure,
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message on {}: {}", self.message.channel, self.failure)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failure)
    }
}

/// The application's error callback.
pub(crate) type ErrorCallback = Arc<dyn Fn(&HandlerError) + Send + Sync>;
