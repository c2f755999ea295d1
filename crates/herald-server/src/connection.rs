//! One client connection: a reader that parses and executes requests, and a writer task
//! ([`crate::writer`]) that drains the client's outbox.
//!
//! The reader parses every complete request in its buffer, executes them in order and
//! appends their replies to one frame, so a pipeline costs one outbox append and one
//! write. While it executes, the outbox holds deliveries back so that a command's reply
//! precedes the messages it caused for this same client. Once a batch is done, the
//! reader writes its reply, and the deliveries of a single PUBLISH to a few subscribers,
//! straight to the sockets whose writer tasks are idle ([`crate::writer::DirectSink`]);
//! pipelined batches and large fan-outs wake the writer tasks instead, once per
//! subscriber per batch. A publisher busy enough has every other batch's deliveries
//! held until its next request arrives, so both go out in one send (`crate::cork`).
//! It stops reading while the client's unread output exceeds
//! [`READ_PAUSE_OUTPUT_BYTES`] (TCP backpressure for clients that send without
//! reading), and closes clients whose unparsed input exceeds
//! `client-query-buffer-limit`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_engine::{Appended, CloseReason, Outbox, PendingWakes};
use herald_proto::{ReplyWriter, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clients::ClientHandle;
use crate::command::{self, lists_blocking::write_served};
use crate::cork::{Cork, CORK_MAX_WAIT};
use crate::server::Shared;
use crate::session::{Blocked, Flow, Session};
use crate::stats::ServerStats;
use crate::writer::{self, ProtocolCell};

/// Initial read buffer size.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Largest single reservation made for a bulk the parser is waiting for; bigger bulks
/// grow the buffer as their bytes arrive instead of trusting the declared length.
const MAX_RESERVE_BYTES: usize = 1024 * 1024;
/// Unread output above which the reader stops reading the client's requests.
pub const READ_PAUSE_OUTPUT_BYTES: usize = 4 * 1024 * 1024;
/// Largest reply buffer reserved up front from the previous batch's size.
const REPLY_RESERVE_MAX_BYTES: usize = 64 * 1024;
/// How long a closing connection may take to flush its last replies.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Queues a batch's replies that waited for their fsync, then the deliveries held
/// behind them, and writes them to the socket when its writer task is idle. Run by the
/// append-only file's thread right after that fsync (see `read_loop`).
fn send_after_fsync(outbox: &Outbox, replies: Bytes) {
    let own = outbox.push_frame_deferred(replies);
    outbox.release_held(false);
    if own == Appended::NeedsFlush {
        outbox.flush();
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    ServerStats::add(&shared.stats.connections_received, 1);
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let id = shared.next_client_id();
    let outbox = Arc::new(Outbox::new(id, Arc::clone(shared.config.output_limits())));
    let handle = Arc::new(ClientHandle::new(id, peer, local, Arc::clone(&outbox)));
    if shared
        .clients
        .register(Arc::clone(&handle), shared.config.maxclients())
        .is_err()
    {
        ServerStats::add(&shared.stats.rejected_connections, 1);
        tracing::warn!(%peer, "rejected connection: max number of clients reached");
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    tracing::debug!(client = %id, %peer, "accepted connection");
    let (reader, socket_writer) = stream.into_split();
    let protocol = Arc::new(ProtocolCell::default());
    let writer = tokio::spawn(writer::run(
        socket_writer,
        Arc::clone(&outbox),
        Arc::clone(&protocol),
        Arc::clone(&shared),
        writer::direct_writes_enabled(),
    ));
    let mut session = Session::new(Arc::clone(&shared), Arc::clone(&handle), protocol);
    let end = read_loop(&mut session, reader, &shared, &outbox).await;
    // Deliveries held for a next request that never came (`crate::cork`): now, not when
    // the session is dropped, after this client's own writer has finished.
    writer::flush_pending(&mut session.pending_wakes);
    session.teardown();
    outbox.close_after_flush();
    if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, writer)
        .await
        .is_err()
    {
        outbox.kill(CloseReason::Killed);
    }
    shared.clients.unregister(id);
    shared.monitors.remove(id);
    report_close(&shared, &handle, end);
}

/// Why the read loop ended.
#[derive(Debug)]
enum ReadEnd {
    PeerClosed,
    ReadError(std::io::Error),
    Flow,
    ProtocolError(String),
    QueryBufferLimit(usize),
    Killed,
}

async fn read_loop(
    session: &mut Session,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    shared: &Shared,
    outbox: &Arc<Outbox>,
) -> ReadEnd {
    let mut buffer = BytesMut::new();
    let mut parser = RequestParser::default();
    let mut last_reply_bytes = 0;
    // A reply the append-only file's thread sends after its fsync, not yet known sent.
    let mut reply_after_fsync = None;
    let mut cork = Cork::default();
    loop {
        if let Some(sent) = reply_after_fsync.take() {
            // Before anything else is executed or queued: what follows goes after it.
            sent.await;
        }
        outbox.hold();
        // Sized like the last batch's replies: a pipeline's replies would otherwise grow
        // the buffer by doubling from empty, five or six reallocations per batch.
        let mut replies = BytesMut::with_capacity(last_reply_bytes.min(REPLY_RESERVE_MAX_BYTES));
        let mut end = None;
        let mut executed = 0u64;
        // The flow that stopped the batch before the buffer ran out, when it is one the
        // connection acts on after the replies (block, shut down, wait for acks).
        let mut stopped = Flow::Continue;
        loop {
            let limits = shared.config.request_limits();
            let authenticated = session.is_authenticated();
            match parser.parse(&mut buffer, &limits, authenticated) {
                Ok(Some(request)) => {
                    executed += 1;
                    let flow = session.execute(request.args(), &mut replies);
                    parser.recycle(request);
                    if outbox.has_held() {
                        if let Some(durable) = session.durability_wait() {
                            session.pending_wakes.flush();
                            durable.await;
                        }
                        outbox.push_frame(replies.split().freeze());
                        outbox.release_held(true);
                    }
                    match flow {
                        Flow::Continue => {}
                        Flow::Close => {
                            end = Some(ReadEnd::Flow);
                            break;
                        }
                        Flow::Block | Flow::Shutdown(_) | Flow::WaitAcks => {
                            stopped = flow;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let text = err.to_string();
                    session.reply_error(&mut replies, &format!("ERR {text}"));
                    ServerStats::add(&shared.stats.protocol_errors, 1);
                    end = Some(ReadEnd::ProtocolError(text));
                    break;
                }
            }
        }
        if executed > 0 {
            // Once per batch: the counter and the handle are shared with every core.
            // Before the replies go out, so a client that saw its reply also sees
            // itself updated in CLIENT LIST from another connection.
            shared.stats.commands_processed.add(executed);
            session.flush_command_counts();
            session.mirror_now();
        }
        // The batch's staged deliveries go into their queues before its replies: a
        // client that saw PUBLISH answered finds the message queued for every receiver.
        session.pending_wakes.commit();
        // Replies acknowledge writes only once `appendfsync` is satisfied. Under
        // `always` the file's thread sends them itself, with the deliveries held behind
        // them, the moment its fsync returns, so the client is not kept waiting for this
        // task to be woken and scheduled. Nor does the task wait: it goes back to reading,
        // and makes sure the reply went out only when it has more to execute (for a client
        // that waits for its reply, long done). Waking it at the fsync instead cost a
        // wake-up per request on the core the clients need: with 50 clients, 370 µs
        // median from the reply to the task's turn, 4 µs more CPU per request.
        last_reply_bytes = replies.len();
        let mut replies = Some(replies.freeze());
        if let Some(durable) = session.durability_wait_then(|| {
            // The action runs exactly once, before the wait ends (`durable_then`).
            let (outbox, waiting) = (Arc::clone(outbox), replies.take().unwrap_or_default());
            Box::new(move || send_after_fsync(&outbox, waiting))
        }) {
            session.pending_wakes.flush();
            if end.is_some() || stopped != Flow::Continue {
                // The reply must be out before the connection closes or blocks.
                durable.await;
            } else {
                reply_after_fsync = Some(durable);
            }
        }
        // The reply first (written here when the writer task is idle), so a client
        // waiting for it can send its next request while the server is still writing
        // to subscribers; then one write (or wake-up) per subscriber this batch
        // published to. Those queues and the reply are independent; a delivery to this
        // client itself was held and follows its reply. A reply sent after the fsync
        // (`replies` taken) releases them itself.
        let own = match replies {
            Some(replies) => {
                let own = outbox.push_frame_deferred(replies);
                outbox.release_held(false);
                own
            }
            None => Appended::Queued,
        };
        let wake_writers = writer::wakes_writers(executed, session.pending_wakes.len());
        // A publisher busy enough is held for its next request (`crate::cork`); never
        // a batch that ends the connection, stops reading or waits for an fsync.
        let direct_writes =
            (!wake_writers && !session.pending_wakes.is_empty()).then(std::time::Instant::now);
        let mut hold = direct_writes.is_some_and(|now| {
            end.is_none()
                && matches!(stopped, Flow::Continue)
                && reply_after_fsync.is_none()
                && cork.hold_batch(now)
        });
        if hold {
            ServerStats::add(&shared.stats.held_publish_batches, 1);
        }
        if own == Appended::NeedsFlush {
            if direct_writes.is_some() && !hold && writer::batched_flush() {
                // The reply joins the deliveries' submission, first in it.
                session.pending_wakes.push_front(outbox);
            } else {
                outbox.flush();
            }
        }
        if wake_writers {
            // A long pipelined batch means load, and a large fan-out keeps this client's next
            // request waiting behind every write: the writer tasks run after the other
            // ready connections, so later publishes join the same queues and each
            // subscriber gets one write for several messages. (Writing here instead cut
            // the deliveries per write from 26 to 15-19 with 2 publishers -> 20, and
            // from 5 to 1 with one PUBLISH at a time to 10 000.) A few writers also
            // yield a few turns first, so the publishers' next batches join their write
            // (`writer::linger_enabled`): only for a small fan-out, counted in receivers
            // (with 200, the few whose queues were empty lingering cost 1.2x the CPU).
            let linger = session.pending_wakes.receivers() <= writer::DIRECT_FLUSH_MAX_SUBSCRIBERS
                && writer::linger_enabled();
            session.pending_wakes.wake_writers(linger);
            cork.released();
        } else if let Some(started) = direct_writes.filter(|_| !hold) {
            // A short batch to a few subscribers: write them now, no wake-ups.
            writer::flush_pending(&mut session.pending_wakes);
            cork.wrote(started);
        }
        if let Some(end) = end {
            return end;
        }
        // After any of these, what was pipelined behind the command is already buffered
        // (or read while waiting): the loop parses it before reading again.
        match stopped {
            Flow::Shutdown(request) => match command::shutdown::prepare(shared, request).await {
                Ok(()) => {
                    // No reply, as Redis: the connection closes with all the others.
                    shared.request_shutdown();
                    return ReadEnd::Flow;
                }
                Err(error) => {
                    let mut reply = BytesMut::new();
                    session.reply_error(&mut reply, &error);
                    outbox.push_frame(reply.freeze());
                    continue;
                }
            },
            Flow::WaitAcks => {
                if let Some(wait) = session.ack_wait.take() {
                    if let Err(end) =
                        wait_for_acks(wait, &mut reader, &mut buffer, shared, outbox).await
                    {
                        return end;
                    }
                    let mut reply = BytesMut::new();
                    let mut writer = ReplyWriter::new(&mut reply, session.protocol);
                    command::waits::write_ack(&mut writer, shared, wait.sequence, wait.reply);
                    outbox.push_frame(reply.freeze());
                }
                continue;
            }
            Flow::Block => {
                if let Some(waiting) = session.blocked.take() {
                    if let Err(end) =
                        wait_blocked(session, waiting, &mut reader, &mut buffer, shared, outbox)
                            .await
                    {
                        return end;
                    }
                }
                continue;
            }
            Flow::Continue | Flow::Close => {}
        }
        if outbox.is_killed() {
            return ReadEnd::Killed;
        }
        // Complete requests were consumed above, so this is one unfinished request.
        // Before AUTH the parser's limits already keep it under 200 KB, which is why
        // Redis's separate 1 MB pre-auth query-buffer check has no counterpart here.
        if buffer.len() > shared.config.query_buffer_limit() {
            ServerStats::add(&shared.stats.query_limit_disconnections, 1);
            if let Some(sent) = reply_after_fsync.take() {
                sent.await;
            }
            return ReadEnd::QueryBufferLimit(buffer.len());
        }
        if outbox.queued_bytes() > READ_PAUSE_OUTPUT_BYTES {
            if hold {
                // Not held while this client is paused for its own output.
                release_held(&mut session.pending_wakes, &mut cork);
                hold = false;
            }
            outbox.space_below(READ_PAUSE_OUTPUT_BYTES / 2).await;
        }
        if hold {
            // Released by the next request's batch, or written here if none comes soon.
            tokio::select! {
                _ = reader.readable() => {}
                () = tokio::time::sleep(CORK_MAX_WAIT) => {
                    ServerStats::add(&shared.stats.held_publish_timeouts, 1);
                    release_held(&mut session.pending_wakes, &mut cork);
                }
                () = outbox.killed() => release_held(&mut session.pending_wakes, &mut cork),
            }
        }
        if let Err(end) = read_more(&mut reader, &mut buffer, &mut parser, shared, outbox).await {
            // A client that sent its last request and closed its side still gets the
            // reply, once the fsync makes it true (the connection closes after).
            if let Some(sent) = reply_after_fsync.take() {
                if !matches!(end, ReadEnd::Killed) {
                    sent.await;
                }
            }
            return end;
        }
    }
}

/// Writes what a held batch left in `pending` when no next request released it
/// (`crate::cork`). Not timed: the write-time average comes from the regular flushes.
fn release_held(pending: &mut PendingWakes, cork: &mut Cork) {
    writer::flush_pending(pending);
    cork.released();
}

/// WAIT/WAITAOF: waits for the fsync of `wait.sequence` (when that can end the wait) or
/// the timeout, reading ahead meanwhile so that a client that goes away or floods is
/// noticed, as a blocked pop does.
async fn wait_for_acks(
    wait: command::waits::AckWait,
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut BytesMut,
    shared: &Shared,
    outbox: &Outbox,
) -> Result<(), ReadEnd> {
    let synced = shared
        .persistence()
        .filter(|_| wait.until_synced)
        .map(|persistence| persistence.writer().synced(wait.sequence));
    let synced = async move {
        match synced {
            Some(synced) => synced.await,
            None => std::future::pending().await,
        }
    };
    let sleep = async move {
        match wait.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(synced, sleep);
    loop {
        tokio::select! {
            () = &mut synced => return Ok(()),
            () = &mut sleep => return Ok(()),
            () = outbox.killed() => return Err(ReadEnd::Killed),
            read = reader.read_buf(buffer) => read_ahead(read, buffer, shared)?,
        }
    }
}

/// What a connection that waits (a blocked pop, WAIT) does with a read meanwhile: keeps
/// the bytes for after the wait, within the query-buffer limit; `Err` ends the
/// connection (the peer left, the read failed, or it sent too much).
fn read_ahead(
    read: std::io::Result<usize>,
    buffer: &BytesMut,
    shared: &Shared,
) -> Result<(), ReadEnd> {
    match read {
        Ok(0) => Err(ReadEnd::PeerClosed),
        Ok(n) => {
            shared.stats.net_input_bytes.add(n as u64);
            if buffer.len() > shared.config.query_buffer_limit() {
                ServerStats::add(&shared.stats.query_limit_disconnections, 1);
                return Err(ReadEnd::QueryBufferLimit(buffer.len()));
            }
            Ok(())
        }
        Err(err) => Err(ReadEnd::ReadError(err)),
    }
}

/// Reads what the socket has into `buffer`, waiting for it if need be. A connection
/// that has to wait with nothing half-read (most subscribers, most of the time) gives
/// its buffer back first, so an idle connection holds no read buffer at all.
async fn read_more(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut BytesMut,
    parser: &mut RequestParser,
    shared: &Shared,
    outbox: &Outbox,
) -> Result<(), ReadEnd> {
    loop {
        let wanted = parser.pending_bulk_hint().min(MAX_RESERVE_BYTES);
        let least = if buffer.capacity() == 0 {
            READ_BUFFER_BYTES
        } else {
            READ_BUFFER_BYTES / 4
        };
        buffer.reserve(wanted.max(least));
        // One poll of the socket's `poll_read` rather than `try_read`: after a read that
        // did not fill the buffer, tokio knows the socket is drained and answers
        // `Pending` with no system call, so a request costs one `recv`, not a `recv`
        // and then an `EAGAIN` one.
        let read = std::future::poll_fn(|cx| {
            Poll::Ready(tokio_util::io::poll_read_buf(
                Pin::new(&mut *reader),
                cx,
                buffer,
            ))
        })
        .await;
        match read {
            Poll::Ready(Ok(0)) => return Err(ReadEnd::PeerClosed),
            Poll::Ready(Ok(n)) => {
                shared.stats.net_input_bytes.add(n as u64);
                return Ok(());
            }
            Poll::Ready(Err(err)) => return Err(ReadEnd::ReadError(err)),
            Poll::Pending => {}
        }
        if buffer.is_empty() {
            *buffer = BytesMut::new();
            parser.release_spares();
        }
        tokio::select! {
            ready = reader.readable() => ready.map_err(ReadEnd::ReadError)?,
            _ = outbox.killed() => return Err(ReadEnd::Killed),
        }
    }
}

/// Waits for a blocked command to be served, time out, or lose its client; queues its
/// reply. Input that arrives meanwhile is buffered, not executed (Redis does the same).
async fn wait_blocked(
    session: &Session,
    mut waiting: Blocked,
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut BytesMut,
    shared: &Shared,
    outbox: &Outbox,
) -> Result<(), ReadEnd> {
    let deadline = waiting.deadline;
    let sleep = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let served = loop {
        tokio::select! {
            served = &mut waiting.served => break served.ok(),
            () = &mut sleep => {
                if waiting.waiter.cancel() {
                    unblock(shared, &waiting);
                    break None;
                }
                // Served in the instant before the timeout: take what was served.
                break (&mut waiting.served).await.ok();
            }
            () = outbox.killed() => {
                waiting.waiter.cancel();
                unblock(shared, &waiting);
                return Err(ReadEnd::Killed);
            }
            read = reader.read_buf(buffer) => {
                if let Err(end) = read_ahead(read, buffer, shared) {
                    waiting.waiter.cancel();
                    unblock(shared, &waiting);
                    return Err(end);
                }
            }
        }
    };
    // The pop was logged by the client whose push served it, under the keyspace lock:
    // once the lock is free, the last record covers it.
    let must_wait = |p: &crate::persistence::Persistence| {
        p.writer().policy() == herald_store::aof::FsyncPolicy::Always
    };
    if let Some(persistence) = shared
        .persistence()
        .filter(|p| served.is_some() && must_wait(p))
    {
        let logged = shared.store.with(|_| persistence.last_sequence());
        persistence.writer().durable(logged).await;
    }
    let mut reply = BytesMut::new();
    write_served(
        &mut ReplyWriter::new(&mut reply, session.protocol),
        waiting.reply,
        served,
    );
    outbox.push_frame(reply.freeze());
    Ok(())
}

fn unblock(shared: &Shared, waiting: &Blocked) {
    shared.store.with(|keyspace| {
        if let Ok(db) = keyspace.db(waiting.db) {
            db.waiters_mut().unblock(&waiting.waiter);
        }
    });
}

fn report_close(shared: &Shared, handle: &ClientHandle, end: ReadEnd) {
    let (id, peer) = (handle.id, handle.peer);
    match (end, handle.outbox.close_reason()) {
        (_, Some(reason)) if reason.is_output_limit() => {
            ServerStats::add(&shared.stats.output_limit_disconnections, 1);
            tracing::warn!(
                client = %id, %peer, ?reason,
                "client closed for overcoming of output buffer limits"
            );
        }
        (ReadEnd::ProtocolError(text), _) => {
            tracing::info!(client = %id, %peer, error = %text, "closed client after protocol error");
        }
        (ReadEnd::QueryBufferLimit(bytes), _) => {
            tracing::warn!(
                client = %id, %peer, bytes,
                "closing client that reached max query buffer length"
            );
        }
        (ReadEnd::ReadError(err), _) => {
            tracing::debug!(client = %id, %peer, %err, "connection read failed");
        }
        (end, reason) => {
            tracing::debug!(client = %id, %peer, ?end, ?reason, "connection closed");
        }
    }
}
