//! The remote transport of a subscriber: one dedicated RESP3 connection (the `redis`
//! crate's multiplexed connection with a push sender), made again with backoff whenever it
//! is lost, after which every subscription of the registry is replayed.
//!
//! Why RESP3 and one name per command: subscription confirmations then arrive as replies
//! to the command that caused them, so SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE (which the
//! crate has no method for on a plain connection) all go through the same path, and no
//! confirmation can be taken for another command's reply.
//!
//! RESP2 fallback: when the server refuses `HELLO 3` (`-ERR unknown command 'HELLO'`,
//! `-NOPROTO`), the subscriber uses the crate's RESP2 pub/sub connection instead, from
//! then on for this subscriber's life, with the same registry replay, events, backoff and
//! health checks; a task forwards its message stream like the push sender below. That
//! connection has no SSUBSCRIBE, so on it a shard subscription fails with a clear error
//! (and is not kept). Cluster subscribers need RESP3.
//!
//! The push sender runs inside the crate's connection driver and must not block: it
//! `try_send`s messages into the dispatcher's bounded queue and, when that is full, flags
//! the connection as a slow consumer; this task then drops the connection and reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::core::{Command, Done, Target};
use super::{resubscribed, ConnectionEvent, Link};
use crate::message::{Message, MessageKind};
use crate::remote::{Endpoint, SubscriberConnection};

/// The shortest time a health-check PING is given to answer.
const MIN_PING_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) async fn run(endpoint: Endpoint, mut link: Link) {
    let mut failures: u32 = 0;
    let mut connected_before = false;
    // Set once the server refused HELLO 3.
    let mut resp2 = false;
    // Confirmations owed to callers whose subscription waits for the next connection.
    let mut pending: Vec<Done> = Vec::new();
    loop {
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let overflow = Arc::new(Notify::new());
        let attempt = tokio::select! {
            biased;
            _ = super::stopped(&mut link.stop) => return,
            attempt = connect(&endpoint, resp2, link.inbound.clone(), closed_tx, Arc::clone(&overflow)) => attempt,
        };
        // The forwarder (RESP2 only) lives exactly as long as the connection.
        let (mut conn, _forwarder) = match attempt {
            Ok(connected) => connected,
            Err(err) if !resp2 && refuses_resp3(&err) && endpoint.is_single() => {
                tracing::info!(
                    "herald-client: the server refused HELLO 3 ({err}); subscribing over RESP2"
                );
                resp2 = true;
                continue;
            }
            Err(err) => {
                let retry_in = link.options.backoff.delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    attempt = failures,
                    ?retry_in,
                    "herald-client: subscriber cannot connect: {err}"
                );
                link.core.emit(ConnectionEvent::ConnectFailed {
                    attempt: failures,
                    error: err.to_string(),
                    retry_in,
                });
                if !wait_taking_commands(&mut link, retry_in, &mut pending).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        tracing::info!("herald-client: subscriber connected");
        link.core.emit(ConnectionEvent::Connected);
        let targets = link.core.targets();
        let mut lost = None;
        for target in &targets {
            match change(&mut conn, true, target).await {
                Ok(()) => {}
                Err(err) if is_connection_error(&err) => {
                    lost = Some(format!("connection lost while resubscribing: {err}"));
                    break;
                }
                Err(err) => tracing::warn!(
                    kind = ?target.kind,
                    name = %target.name,
                    "herald-client: the server refused a resubscription: {err}"
                ),
            }
        }
        let reason = match lost {
            Some(reason) => reason,
            None => {
                if connected_before {
                    tracing::info!(subscriptions = targets.len(), "herald-client: resubscribed");
                    link.core.emit(resubscribed(&targets));
                }
                connected_before = true;
                for done in pending.drain(..) {
                    let _ = done.send(Ok(()));
                }
                match serve(
                    &mut conn,
                    &mut link,
                    &mut closed_rx,
                    &overflow,
                    &mut pending,
                )
                .await
                {
                    Some(reason) => reason,
                    None => return,
                }
            }
        };
        tracing::warn!(%reason, "herald-client: subscriber disconnected");
        link.core.emit(ConnectionEvent::Disconnected { reason });
        drop(conn);
        if link.is_stopped() {
            return;
        }
    }
}

/// Runs commands and health checks until the connection is lost (the reason) or the
/// subscriber stops (`None`).
async fn serve(
    conn: &mut SubscriberConnection,
    link: &mut Link,
    closed: &mut mpsc::UnboundedReceiver<()>,
    overflow: &Notify,
    pending: &mut Vec<Done>,
) -> Option<String> {
    let period = link.options.health_check;
    let mut health = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = super::stopped(&mut link.stop) => return None,
            _ = closed.recv() => return Some("connection closed".to_owned()),
            _ = overflow.notified() => {
                return Some(format!(
                    "slow consumer: {} messages were already waiting for handlers; messages were lost",
                    link.options.queue_capacity
                ));
            }
            command = link.commands.recv() => {
                let command = command?;
                if let Err(reason) = execute(conn, command, pending).await {
                    return Some(reason);
                }
            }
            _ = health.tick() => {
                // A connection that cannot answer a PING within one interval (or a second,
                // whichever is longer) is as good as dead, even if TCP has not noticed.
                let limit = period.max(MIN_PING_TIMEOUT);
                match tokio::time::timeout(limit, conn.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => return Some(format!("PING failed: {err}")),
                    Err(_) => return Some(format!("PING unanswered for {} ms", limit.as_millis())),
                }
            }
        }
    }
}

/// Makes one registry change on the server. A connection error keeps a subscribe's
/// confirmation pending (the replay after reconnect makes it) and ends the connection.
async fn execute(
    conn: &mut SubscriberConnection,
    command: Command,
    pending: &mut Vec<Done>,
) -> Result<(), String> {
    let (subscribe, target, done) = match command {
        Command::Subscribe(target, done) => (true, target, done),
        Command::Unsubscribe(target, done) => (false, target, done),
    };
    match change(conn, subscribe, &target).await {
        Ok(()) => {
            if let Some(done) = done {
                let _ = done.send(Ok(()));
            }
            Ok(())
        }
        Err(err) if is_connection_error(&err) => {
            match done {
                Some(done) if subscribe => pending.push(done),
                // The new connection will not have it: that is the unsubscription.
                Some(done) => {
                    let _ = done.send(Ok(()));
                }
                None => {}
            }
            Err(format!("connection lost: {err}"))
        }
        Err(err) => {
            if let Some(done) = done {
                let _ = done.send(Err(err.into()));
            }
            Ok(())
        }
    }
}

/// Sleeps `delay` (false when stopped meanwhile), answering commands as the registry
/// already reflects them: subscriptions complete after the next resubscription,
/// unsubscriptions at once (the next connection will not have them).
async fn wait_taking_commands(link: &mut Link, delay: Duration, pending: &mut Vec<Done>) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            _ = super::stopped(&mut link.stop) => return false,
            _ = &mut sleep => return true,
            command = link.commands.recv() => match command {
                None => return false,
                Some(Command::Subscribe(_, done)) => pending.extend(done),
                Some(Command::Unsubscribe(_, done)) => {
                    if let Some(done) = done {
                        let _ = done.send(Ok(()));
                    }
                }
            },
        }
    }
}

/// Aborts the RESP2 message forwarder when the connection it serves is dropped.
struct Forwarder(JoinHandle<()>);

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A RESP3 connection with a push sender, or (`resp2`) a RESP2 pub/sub connection with a
/// task forwarding its messages the same way.
async fn connect(
    endpoint: &Endpoint,
    resp2: bool,
    inbound: mpsc::Sender<Message>,
    closed: mpsc::UnboundedSender<()>,
    overflow: Arc<Notify>,
) -> Result<(SubscriberConnection, Option<Forwarder>), redis::RedisError> {
    if resp2 {
        let (conn, stream) = endpoint.resp2_subscriber_connection().await?;
        let forwarder = tokio::spawn(forward(stream, inbound, closed, overflow));
        Ok((conn, Some(Forwarder(forwarder))))
    } else {
        let push = push_sender(inbound, closed, overflow);
        Ok((endpoint.subscriber_connection(push).await?, None))
    }
}

/// True when connecting failed because the server does not do RESP3 (HELLO 3).
fn refuses_resp3(err: &redis::RedisError) -> bool {
    if err.kind() == redis::ErrorKind::RESP3NotSupported || err.code() == Some("NOPROTO") {
        return true;
    }
    let detail = err.detail().unwrap_or_default().to_ascii_lowercase();
    err.code() == Some("ERR") && detail.contains("unknown command") && detail.contains("hello")
}

/// The RESP2 counterpart of [`push_sender`]: messages into the queue (a full queue flags a
/// slow consumer), and the end of the stream reported as a closed connection.
async fn forward(
    mut stream: redis::aio::PubSubStream,
    inbound: mpsc::Sender<Message>,
    closed: mpsc::UnboundedSender<()>,
    overflow: Arc<Notify>,
) {
    while let Some(msg) = stream.next().await {
        if let Some(message) = from_resp2(&msg) {
            if let Err(mpsc::error::TrySendError::Full(_)) = inbound.try_send(message) {
                overflow.notify_one();
            }
        }
    }
    let _ = closed.send(());
}

/// A RESP2 `message` or `pmessage` as a [`Message`].
fn from_resp2(msg: &redis::Msg) -> Option<Message> {
    let channel: Vec<u8> = msg.get_channel().ok()?;
    let kind = if msg.from_pattern() {
        let pattern: Vec<u8> = msg.get_pattern().ok()?;
        MessageKind::Pattern(String::from_utf8_lossy(&pattern).into_owned())
    } else {
        MessageKind::Channel
    };
    Some(Message {
        kind,
        channel: String::from_utf8_lossy(&channel).into_owned(),
        payload: bytes::Bytes::copy_from_slice(msg.get_payload_bytes()),
    })
}

fn is_connection_error(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
}

async fn change(
    conn: &mut SubscriberConnection,
    subscribe: bool,
    target: &Target,
) -> Result<(), redis::RedisError> {
    conn.change(subscribe, target.kind, &target.name).await
}

fn push_sender(
    inbound: mpsc::Sender<Message>,
    closed: mpsc::UnboundedSender<()>,
    overflow: Arc<Notify>,
) -> impl Fn(PushInfo) -> Result<(), std::convert::Infallible> + Send + Sync + 'static {
    move |push: PushInfo| {
        if push.kind == PushKind::Disconnection {
            let _ = closed.send(());
        } else if let Some(message) = to_message(push) {
            if let Err(mpsc::error::TrySendError::Full(_)) = inbound.try_send(message) {
                overflow.notify_one();
            }
        }
        Ok(())
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

fn payload(value: Value) -> Option<bytes::Bytes> {
    match value {
        Value::BulkString(bytes) => Some(bytes.into()),
        Value::SimpleString(text) => Some(text.into()),
        _ => None,
    }
}

/// A `message`, `pmessage` or `smessage` push as a [`Message`]; anything else is `None`.
fn to_message(push: PushInfo) -> Option<Message> {
    let mut data = push.data.into_iter();
    let kind = match push.kind {
        PushKind::Message => MessageKind::Channel,
        PushKind::SMessage => MessageKind::Shard,
        PushKind::PMessage => MessageKind::Pattern(text(data.next()?)?),
        _ => return None,
    };
    let channel = text(data.next()?)?;
    let payload = payload(data.next()?)?;
    Some(Message {
        kind,
        channel,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn pushes_become_messages() {
        let message = to_message(PushInfo {
            kind: PushKind::PMessage,
            data: vec![bulk("n*"), bulk("news"), bulk("hi")],
        });
        assert_eq!(
            message,
            Some(Message::new(
                MessageKind::Pattern("n*".into()),
                "news",
                "hi"
            ))
        );
        let shard = to_message(PushInfo {
            kind: PushKind::SMessage,
            data: vec![bulk("s"), bulk("x")],
        });
        assert_eq!(shard, Some(Message::new(MessageKind::Shard, "s", "x")));
    }

    #[test]
    fn other_or_malformed_pushes_are_ignored() {
        for (kind, data) in [
            (PushKind::Subscribe, vec![bulk("a"), Value::Int(1)]),
            (PushKind::Message, vec![bulk("only-channel")]),
            (PushKind::Message, vec![Value::Int(3), bulk("x")]),
            (PushKind::PMessage, vec![]),
        ] {
            assert_eq!(to_message(PushInfo { kind, data }), None);
        }
    }
}
