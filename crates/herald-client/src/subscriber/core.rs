//! The state a subscriber's API and its background tasks share: the subscription
//! registry, the command queue to the transport task, the event channel, and the
//! dispatcher that runs handlers.
//!
//! The registry is the source of truth for what to (re)subscribe: the transport replays
//! it after every reconnect, whatever the server or the `redis` crate remember. It is a
//! `parking_lot::Mutex` held only to read or change the map and to queue the matching
//! command, never across an `.await`; queueing under the lock keeps the commands in the
//! same order as the registry changes, so a subscribe and an unsubscribe of one name
//! racing each other reach the server in the order they changed the registry.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{Error, HandlerFailure};
use crate::handler::{Dispatch, ErrorCallback, HandlerError};
use crate::message::{Message, MessageKind};
use crate::subscriber::{ConnectionEvent, HandlerId, SubscriptionKind};

/// One server-side subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    pub(crate) kind: SubscriptionKind,
    pub(crate) name: String,
}

impl Target {
    /// The subscription a message arrived through.
    pub(crate) fn of(message: &Message) -> Target {
        match &message.kind {
            MessageKind::Channel => Target {
                kind: SubscriptionKind::Channel,
                name: message.channel.clone(),
            },
            MessageKind::Pattern(pattern) => Target {
                kind: SubscriptionKind::Pattern,
                name: pattern.clone(),
            },
            MessageKind::Shard => Target {
                kind: SubscriptionKind::Shard,
                name: message.channel.clone(),
            },
        }
    }
}

/// Completes when the server has confirmed a (un)subscription, or with the error.
pub(crate) type Done = oneshot::Sender<Result<(), Error>>;
/// The receiving end of a [`Done`].
pub(crate) type Confirmation = oneshot::Receiver<Result<(), Error>>;

/// A change the transport task must make on the server.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe(Target, Option<Done>),
    Unsubscribe(Target, Option<Done>),
}

#[derive(Default)]
struct Registry {
    targets: HashMap<Target, Vec<(HandlerId, Dispatch)>>,
    next_id: u64,
    stopped: bool,
}

pub(crate) struct Core {
    registry: Mutex<Registry>,
    commands: mpsc::UnboundedSender<Command>,
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
    on_error: Option<ErrorCallback>,
}

impl Core {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        events: broadcast::Sender<ConnectionEvent>,
        on_error: Option<ErrorCallback>,
    ) -> Core {
        Core {
            registry: Mutex::new(Registry::default()),
            commands,
            events,
            on_error,
        }
    }

    /// Every subscription to hold on the server now.
    pub(crate) fn targets(&self) -> Vec<Target> {
        self.registry.lock().targets.keys().cloned().collect()
    }

    /// Sends an event to whoever listens; nobody listening is fine.
    pub(crate) fn emit(&self, event: ConnectionEvent) {
        let _ = self.events.send(event);
    }

    /// Adds a handler. Returns its id and, when it is the first for `target`, the
    /// receiver of the server's confirmation.
    pub(crate) fn add(
        &self,
        target: Target,
        dispatch: Dispatch,
    ) -> Result<(HandlerId, Option<Confirmation>), Error> {
        let mut registry = self.registry.lock();
        if registry.stopped {
            return Err(Error::Stopped);
        }
        registry.next_id += 1;
        let id = HandlerId(registry.next_id);
        let handlers = registry.targets.entry(target.clone()).or_default();
        handlers.push((id, dispatch));
        if handlers.len() > 1 {
            return Ok((id, None));
        }
        let (done, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(target, Some(done)))
            .map_err(|_| Error::Stopped)?;
        Ok((id, Some(confirmed)))
    }

    /// Removes one handler; unsubscribes on the server when it was the last of its target.
    pub(crate) fn remove_handler(&self, id: HandlerId) -> Option<Confirmation> {
        let mut registry = self.registry.lock();
        let target = registry
            .targets
            .iter()
            .find(|(_, handlers)| handlers.iter().any(|(each, _)| *each == id))
            .map(|(target, _)| target.clone())?;
        let handlers = registry.targets.get_mut(&target)?;
        handlers.retain(|(each, _)| *each != id);
        if !handlers.is_empty() {
            return None;
        }
        registry.targets.remove(&target);
        self.queue_unsubscribe(target)
    }

    /// Removes every handler of `target` and unsubscribes on the server.
    pub(crate) fn remove_target(&self, target: Target) -> Option<Confirmation> {
        let mut registry = self.registry.lock();
        registry.targets.remove(&target)?;
        self.queue_unsubscribe(target)
    }

    fn queue_unsubscribe(&self, target: Target) -> Option<Confirmation> {
        let (done, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Unsubscribe(target, Some(done)))
            .ok()?;
        Some(confirmed)
    }

    /// Refuses further subscriptions (stop in progress).
    pub(crate) fn close(&self) {
        self.registry.lock().stopped = true;
    }

    /// Drops every handler once the tasks are gone, which ends the streams.
    pub(crate) fn clear(&self) {
        let targets = std::mem::take(&mut self.registry.lock().targets);
        drop(targets);
    }

    fn handlers_for(&self, target: &Target) -> Vec<(HandlerId, Dispatch)> {
        self.registry
            .lock()
            .targets
            .get(target)
            .cloned()
            .unwrap_or_default()
    }

    fn report(&self, message: &Message, failure: HandlerFailure) {
        tracing::warn!(
            channel = %message.channel,
            kind = ?message.kind,
            "herald-client: {failure}"
        );
        if let Some(callback) = &self.on_error {
            let report = HandlerError {
                message: message.clone(),
                failure,
            };
            // The callback is application code too: it must not take the dispatcher down.
            if std::panic::catch_unwind(AssertUnwindSafe(|| callback(&report))).is_err() {
                tracing::error!("herald-client: the error callback panicked");
            }
        }
    }

    /// Runs every handler of `message`'s subscription concurrently and waits for all of
    /// them, each isolated: an error or a panic is reported and the others go on.
    async fn dispatch(&self, message: Message) {
        let handlers = self.handlers_for(&Target::of(&message));
        let runs = handlers.into_iter().map(|(_, dispatch)| {
            let message = message.clone();
            AssertUnwindSafe(async move { dispatch(message).await }).catch_unwind()
        });
        for outcome in futures_util::future::join_all(runs).await {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => self.report(&message, failure),
                Err(panic) => self.report(&message, HandlerFailure::Panicked(panic_text(&panic))),
            }
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// The dispatcher task: one message at a time, in arrival order; handlers of one message
/// run concurrently. On stop it finishes the message in hand and returns.
pub(crate) async fn run_dispatcher(
    core: Arc<Core>,
    mut inbound: mpsc::Receiver<Message>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = super::stopped(&mut stop) => return,
            message = inbound.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        core.dispatch(message).await;
    }
}
