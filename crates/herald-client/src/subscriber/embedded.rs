//! The embedded transport of a subscriber: an [`Outbox`] registered in the in-process
//! engine, drained into the dispatcher's queue.
//!
//! The outbox has Redis's pubsub output limits: a subscriber whose handlers fall so far
//! behind that 32 MB wait in it is cut off by the engine, exactly as a slow consumer of a
//! server. This task then reports the disconnection, registers a fresh outbox and replays
//! the registry, like a remote reconnect. Whatever the outbox subscribed to is removed
//! from the engine when it is replaced or the subscriber stops, so no dead outbox stays in
//! the engine's maps.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use herald_engine::{ClientClass, CloseReason, DeliveryKind, Outbox, OutboxBatch, Outgoing};

use super::core::{Command, Target};
use super::{resubscribed, ConnectionEvent, Link, SubscriptionKind};
use crate::embedded::Embedded;
use crate::message::{Message, MessageKind};
use crate::transport::Backend;

/// Bytes of deliveries taken from the outbox at a time.
const BATCH_BYTES: usize = 64 * 1024;

pub(crate) async fn run(backend: Arc<Backend>, mut link: Link) {
    let Backend::Embedded(embedded) = &*backend else {
        return;
    };
    let mut connected_before = false;
    loop {
        let outbox = Arc::new(Outbox::new(
            embedded.next_client_id(),
            Arc::clone(&embedded.limits),
        ));
        outbox.set_class(ClientClass::Pubsub);
        let mut attached = Attached {
            embedded,
            outbox,
            targets: HashSet::new(),
        };
        let targets = link.core.targets();
        for target in &targets {
            attached.change(true, target);
        }
        link.core.emit(ConnectionEvent::Connected);
        if connected_before {
            link.core.emit(resubscribed(&targets));
        }
        connected_before = true;
        let reason = serve(&mut attached, &mut link).await;
        attached.detach();
        match reason {
            Some(reason) => {
                tracing::warn!(%reason, "herald-client: embedded subscriber disconnected");
                link.core.emit(ConnectionEvent::Disconnected { reason });
            }
            None => return,
        }
    }
}

/// An outbox and what it is subscribed to in the engine.
struct Attached<'a> {
    embedded: &'a Embedded,
    outbox: Arc<Outbox>,
    targets: HashSet<Target>,
}

impl Attached<'_> {
    fn change(&mut self, subscribe: bool, target: &Target) {
        let engine = &self.embedded.engine;
        let name = Bytes::copy_from_slice(target.name.as_bytes());
        let id = self.outbox.id();
        match (subscribe, target.kind) {
            (true, SubscriptionKind::Channel) => {
                engine.subscribe(herald_engine::Scope::Classic, name, &self.outbox);
            }
            (true, SubscriptionKind::Shard) => {
                engine.subscribe(herald_engine::Scope::Shard, name, &self.outbox);
            }
            (true, SubscriptionKind::Pattern) => {
                engine.psubscribe(name, &self.outbox);
            }
            (false, SubscriptionKind::Channel) => {
                engine.unsubscribe(herald_engine::Scope::Classic, &name, id);
            }
            (false, SubscriptionKind::Shard) => {
                engine.unsubscribe(herald_engine::Scope::Shard, &name, id);
            }
            (false, SubscriptionKind::Pattern) => {
                engine.punsubscribe(&name, id);
            }
        }
        if subscribe {
            self.targets.insert(target.clone());
        } else {
            self.targets.remove(target);
        }
    }

    /// Leaves the engine: unsubscribes everything and closes the outbox.
    fn detach(&mut self) {
        for target in std::mem::take(&mut self.targets) {
            self.change(false, &target);
        }
        self.outbox.kill(CloseReason::Killed);
    }
}

/// Moves deliveries to the dispatcher and applies commands until the outbox is cut off
/// (the reason) or the subscriber stops (`None`).
async fn serve(attached: &mut Attached<'_>, link: &mut Link) -> Option<String> {
    let outbox = Arc::clone(&attached.outbox);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = super::stopped(&mut link.stop) => return None,
            command = link.commands.recv() => {
                let (subscribe, target, done) = match command? {
                    Command::Subscribe(target, done) => (true, target, done),
                    Command::Unsubscribe(target, done) => (false, target, done),
                };
                attached.change(subscribe, &target);
                if let Some(done) = done {
                    let _ = done.send(Ok(()));
                }
            }
            _ = outbox.output_ready() => loop {
                match outbox.take_batch(&mut batch, BATCH_BYTES) {
                    OutboxBatch::Ready => {
                        for delivery in batch.drain(..).flat_map(Outgoing::deliveries) {
                            let kind = match delivery.kind {
                                DeliveryKind::Channel => MessageKind::Channel,
                                DeliveryKind::Shard => MessageKind::Shard,
                                DeliveryKind::Pattern(pattern) => {
                                    MessageKind::Pattern(String::from_utf8_lossy(&pattern).into_owned())
                                }
                            };
                            let message = Message {
                                kind,
                                channel: String::from_utf8_lossy(&delivery.message.channel).into_owned(),
                                payload: delivery.message.payload.clone(),
                            };
                            // Waits while the dispatcher is behind; the outbox limits bound that.
                            link.inbound.send(message).await.ok()?;
                        }
                    }
                    OutboxBatch::Empty => break,
                    OutboxBatch::Finished | OutboxBatch::Killed => {
                        return Some(close_text(outbox.close_reason()));
                    }
                }
            },
        }
    }
}

fn close_text(reason: Option<CloseReason>) -> String {
    match reason {
        Some(CloseReason::HardLimit {
            queued_bytes,
            limit,
            ..
        }) => format!(
            "slow consumer: {queued_bytes} bytes queued, over the hard limit of {} bytes",
            limit.hard_bytes
        ),
        Some(CloseReason::SoftLimit {
            queued_bytes,
            limit,
            ..
        }) => format!(
            "slow consumer: {queued_bytes} bytes queued, over the soft limit of {} bytes for {} s",
            limit.soft_bytes, limit.soft_seconds
        ),
        Some(CloseReason::Killed) => "killed".to_owned(),
        Some(CloseReason::AfterFlush) | None => "closed".to_owned(),
    }
}
