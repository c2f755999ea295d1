//! The outbox queue's own unit tests, and the helpers the other outbox tests share.

use std::time::Duration;

use super::*;
use crate::message::{DeliveryKind, Message, DELIVERY_FRAMING_BYTES};

pub(crate) fn delivery(payload: &'static [u8]) -> Delivery {
    Delivery {
        kind: DeliveryKind::Channel,
        message: Arc::new(Message::new(
            Bytes::from_static(b"ch"),
            Bytes::from_static(payload),
        )),
    }
}

pub(crate) fn outbox_with(class: ClientClass, limit: OutputLimit) -> Outbox {
    let limits = Arc::new(OutputLimits::default());
    limits.set(class, limit);
    let outbox = Outbox::new(ClientId(1), limits);
    outbox.set_class(class);
    outbox
}

pub(crate) fn drain(outbox: &Outbox) -> Vec<Outgoing> {
    let mut out = Vec::new();
    while outbox.take_batch(&mut out, usize::MAX) == OutboxBatch::Ready {}
    out
}

#[test]
fn queue_keeps_order_and_counts_bytes() {
    let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
    outbox.push_frame(Bytes::from_static(b"+OK\r\n"));
    assert!(outbox.deliver(delivery(b"x")));
    assert_eq!(outbox.queued_bytes(), 5 + 3 + DELIVERY_FRAMING_BYTES);
    let taken = drain(&outbox);
    assert_eq!(taken.len(), 2);
    assert!(matches!(taken[0], Outgoing::Frame(_)));
    assert_eq!(outbox.queued_bytes(), 0);
}

#[tokio::test]
async fn the_writer_is_woken_for_every_batch_it_has_not_seen() {
    let outbox = Arc::new(outbox_with(ClientClass::Normal, OutputLimit::default()));
    let wait = |outbox: &Arc<Outbox>| {
        let outbox = Arc::clone(outbox);
        tokio::spawn(async move { outbox.output_ready().await })
    };
    let bounded = |task| tokio::time::timeout(Duration::from_secs(5), task);
    outbox.deliver(delivery(b"1"));
    outbox.deliver(delivery(b"2"));
    bounded(wait(&outbox)).await.expect("no wake-up").unwrap();
    assert_eq!(drain(&outbox).len(), 2);
    // Drained: the writer waits, and the next append must wake it.
    let waiter = wait(&outbox);
    tokio::task::yield_now().await;
    outbox.deliver(delivery(b"3"));
    bounded(waiter).await.expect("no wake-up").unwrap();
    assert_eq!(drain(&outbox).len(), 1);
}

#[test]
fn a_drained_burst_gives_its_memory_back() {
    let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
    for _ in 0..100_000 {
        outbox.deliver(delivery(b"x"));
    }
    drain(&outbox);
    assert!(outbox.state.lock().queue.capacity() <= RETAINED_QUEUE_CAPACITY);
}

#[test]
fn held_deliveries_follow_the_reply() {
    let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
    outbox.hold();
    outbox.deliver(delivery(b"pushed"));
    assert!(outbox.has_held());
    outbox.push_frame(Bytes::from_static(b":1\r\n"));
    outbox.release_held(false);
    assert!(!outbox.has_held());
    let taken = drain(&outbox);
    assert_eq!(taken[0], Outgoing::Frame(Bytes::from_static(b":1\r\n")));
    assert!(matches!(taken[1], Outgoing::Delivery(_)));
}

#[test]
fn close_after_flush_drains_then_finishes() {
    let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
    outbox.push_frame(Bytes::from_static(b"+OK\r\n"));
    outbox.close_after_flush();
    assert!(!outbox.deliver(delivery(b"late")));
    let mut out = Vec::new();
    assert_eq!(outbox.take_batch(&mut out, usize::MAX), OutboxBatch::Ready);
    assert_eq!(
        outbox.take_batch(&mut out, usize::MAX),
        OutboxBatch::Finished
    );
    assert_eq!(out.len(), 1);
}

#[tokio::test]
async fn killed_wakes_waiters() {
    let outbox = Arc::new(outbox_with(ClientClass::Normal, OutputLimit::default()));
    let waiter = {
        let outbox = Arc::clone(&outbox);
        tokio::spawn(async move { outbox.killed().await })
    };
    tokio::task::yield_now().await;
    outbox.kill(CloseReason::Killed);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("killed() did not wake")
        .expect("waiter panicked");
}
