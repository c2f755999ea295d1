//! The blocking list commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP.
//!
//! A blocking command that finds nothing registers a waiter with the store and returns
//! [`Flow::Block`]; the connection then waits for the store to serve it or for the
//! timeout (`crate::connection`). Inside EXEC they never block: they answer null. What a
//! served command logs to the append-only file is its non-blocking equivalent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_proto::ReplyWriter;
use herald_store::blocking::{BlockedOp, Served, Waiter};
use herald_store::lists::{self, End};

use super::lists::{parse_end, parse_mpop, WRITE};
use super::{flag, with_db, CommandSpec, SYNTAX_ERROR};
use crate::session::{Blocked, BlockedReply, Flow, Output, Session};

/// Parses a blocking timeout in seconds (`0` waits forever), as Redis's
/// `getTimeoutFromObjectOrReply`.
fn parse_timeout(out: &mut Output<'_>, arg: &[u8]) -> Option<Option<Duration>> {
    let Some(seconds) = herald_store::strings::parse_float(arg).filter(|s| s.is_finite()) else {
        out.error("ERR timeout is not a float or out of range");
        return None;
    };
    if seconds < 0.0 {
        out.error("ERR timeout is negative");
        return None;
    }
    // Redis caps at LLONG_MAX milliseconds; anything near that is "forever" in practice.
    Some((seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(1e12))))
}

/// What a blocking command found at once.
enum Attempt {
    Served(Served),
    Blocked(Arc<Waiter>, tokio::sync::oneshot::Receiver<Served>),
    Nothing,
}

/// Tries `keys` in order; if none can serve, registers a waiter (unless inside EXEC, where
/// blocking commands do not block). The attempt and the registration happen under one
/// lock, so no push can slip between them.
fn block_or_serve(
    session: &mut Session,
    out: &mut Output<'_>,
    keys: &[Bytes],
    op: BlockedOp,
    timeout: Option<Duration>,
    reply: BlockedReply,
) -> Flow {
    let in_transaction = session.executing_transaction;
    let attempt = with_db(session, out, |db, now| {
        for key in keys {
            let served = match &op {
                BlockedOp::Pop { end, count } => lists::pop(db, key, *end, *count, now)?
                    .filter(|values| !values.is_empty())
                    .map(|values| Served::Popped {
                        key: key.clone(),
                        values,
                    }),
                BlockedOp::Move {
                    destination,
                    from,
                    to,
                } => lists::move_element(db, key, destination, *from, *to, now)?.map(Served::Moved),
                // Only list operations come through here.
                BlockedOp::StreamRead { .. } | BlockedOp::GroupRead { .. } => None,
            };
            if let Some(served) = served {
                return Ok(Attempt::Served(served));
            }
        }
        if in_transaction {
            return Ok(Attempt::Nothing);
        }
        let (waiter, receiver) = Waiter::new(keys.to_vec(), op.clone());
        db.waiters_mut().block(&waiter);
        Ok(Attempt::Blocked(waiter, receiver))
    });
    match attempt {
        None => Flow::Continue,
        Some(Attempt::Served(served)) => {
            session.propagate_as(served_record(keys, &op, &served).into_iter().collect());
            write_served(&mut out.reply(), reply, Some(served));
            Flow::Continue
        }
        Some(Attempt::Nothing) => {
            session.propagate_as(Vec::new());
            out.reply().null_array();
            Flow::Continue
        }
        Some(Attempt::Blocked(waiter, served)) => {
            session.blocked = Some(Blocked {
                waiter,
                served,
                deadline: timeout.map(|timeout| tokio::time::Instant::now() + timeout),
                db: session.db,
                reply,
            });
            Flow::Block
        }
    }
}

/// The non-blocking command with the effect a served blocking command had (what the
/// append-only file logs); `None` when it changed nothing.
fn served_record(keys: &[Bytes], op: &BlockedOp, served: &Served) -> Option<Vec<Bytes>> {
    let end_name = |end: End| match end {
        End::Left => &b"LEFT"[..],
        End::Right => &b"RIGHT"[..],
    };
    match (op, served) {
        (BlockedOp::Pop { end, .. }, Served::Popped { key, values }) => {
            let command = match end {
                End::Left => &b"LPOP"[..],
                End::Right => &b"RPOP"[..],
            };
            let count = itoa::Buffer::new().format(values.len()).to_owned();
            Some(super::record(&[command, key, count.as_bytes()]))
        }
        (
            BlockedOp::Move {
                destination,
                from,
                to,
            },
            Served::Moved(_),
        ) => {
            // BLMOVE and BRPOPLPUSH name one source.
            let source = keys.first()?;
            Some(super::record(&[
                b"LMOVE",
                source,
                destination,
                end_name(*from),
                end_name(*to),
            ]))
        }
        _ => None,
    }
}

/// Writes the reply of a blocking command: what was served, or the timeout's null array.
pub fn write_served(reply: &mut ReplyWriter<'_>, shape: BlockedReply, served: Option<Served>) {
    match (served, shape) {
        (None, _) => reply.null_array(),
        (Some(served), BlockedReply::Streams) => {
            super::streams_read::write_served_streams(reply, &served);
        }
        (Some(Served::Streams(_) | Served::Group(_)), _) => reply.null_array(),
        (Some(Served::Failed(err)), _) => reply.error(&err.to_string()),
        (Some(Served::Moved(value)), _) => reply.bulk(&value),
        (Some(Served::Popped { key, values }), BlockedReply::KeyAndElements) => {
            reply.array(2);
            reply.bulk(&key);
            reply.array(values.len());
            for value in &values {
                reply.bulk(value);
            }
        }
        (Some(Served::Popped { key, values }), _) => {
            reply.array(2);
            reply.bulk(&key);
            reply.optional_bulk(values.first().map(|value| &value[..]));
        }
    }
}

fn blocking_pop(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], end: End) -> Flow {
    let Some((timeout, keys)) = args[1..].split_last() else {
        return Flow::Continue;
    };
    let Some(timeout) = parse_timeout(out, timeout) else {
        return Flow::Continue;
    };
    block_or_serve(
        session,
        out,
        keys,
        BlockedOp::Pop { end, count: 1 },
        timeout,
        BlockedReply::KeyAndElement,
    )
}

const BLOCKING: CommandSpec = CommandSpec {
    flags: flag::WRITE | flag::NOSCRIPT,
    acl_categories: &["@write", "@list", "@slow", "@blocking"],
    ..WRITE
};

/// `BLPOP key [key ...] timeout`
pub const BLPOP: CommandSpec = CommandSpec {
    name: "blpop",
    full_name: "blpop",
    arity: -3,
    since: "2.0.0",
    summary: "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    complexity: "O(N) where N is the number of provided keys.",
    handler: Some(|session, out, args| blocking_pop(session, out, args, End::Left)),
    ..BLOCKING
};

/// `BRPOP key [key ...] timeout`
pub const BRPOP: CommandSpec = CommandSpec {
    name: "brpop",
    full_name: "brpop",
    summary: "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    handler: Some(|session, out, args| blocking_pop(session, out, args, End::Right)),
    ..BLPOP
};

/// `BLMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout`
pub const BLMOVE: CommandSpec = CommandSpec {
    name: "blmove",
    full_name: "blmove",
    arity: 6,
    since: "6.2.0",
    summary: "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
    complexity: "O(1)",
    handler: Some(|session, out, args| {
        let (Some(from), Some(to)) = (parse_end(&args[3]), parse_end(&args[4])) else {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        };
        let Some(timeout) = parse_timeout(out, &args[5]) else {
            return Flow::Continue;
        };
        let op = BlockedOp::Move { destination: args[2].clone(), from, to };
        block_or_serve(session, out, &args[1..2], op, timeout, BlockedReply::Element)
    }),
    ..BLOCKING
};

/// `BRPOPLPUSH source destination timeout`
pub const BRPOPLPUSH: CommandSpec = CommandSpec {
    name: "brpoplpush",
    full_name: "brpoplpush",
    arity: 4,
    since: "2.2.0",
    summary: "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
    handler: Some(|session, out, args| {
        let Some(timeout) = parse_timeout(out, &args[3]) else {
            return Flow::Continue;
        };
        let op = BlockedOp::Move { destination: args[2].clone(), from: End::Right, to: End::Left };
        block_or_serve(session, out, &args[1..2], op, timeout, BlockedReply::Element)
    }),
    ..BLMOVE
};

/// `BLMPOP timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`
pub const BLMPOP: CommandSpec = CommandSpec {
    name: "blmpop",
    full_name: "blmpop",
    arity: -5,
    since: "7.0.0",
    summary: "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
    handler: Some(|session, out, args| {
        let Some(timeout) = parse_timeout(out, &args[1]) else {
            return Flow::Continue;
        };
        let Some((keys, end, count)) = parse_mpop(out, &args[2..]) else {
            return Flow::Continue;
        };
        let op = BlockedOp::Pop { end, count };
        block_or_serve(session, out, &keys, op, timeout, BlockedReply::KeyAndElements)
    }),
    ..BLOCKING
};
