//! WAIT and WAITAOF: a client waits until its earlier writes are acknowledged by
//! replicas (WAIT) or fsynced to the append-only file and/or replicas (WAITAOF, Redis
//! 7.2), or until a timeout in milliseconds (0: none).
//!
//! Herald has no replicas, so any replica count above zero is never reached and the
//! command answers when the timeout comes, with what was reached: 0 replicas, and for
//! WAITAOF whether this client's last write is on disk. A request that is already met
//! (or made inside MULTI, where nothing may block) answers at once. The handlers only
//! decide; the connection does the waiting (`crate::connection`), so a handler never
//! blocks.

use std::time::Duration;

use bytes::Bytes;
use herald_proto::ReplyWriter;

use super::{parse_i64, parse_timeout_millis, CommandSpec, BASE, NOT_AN_INTEGER};
use crate::server::Shared;
use crate::session::{Flow, Output, Session};

/// What a WAIT or WAITAOF that could not answer at once waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckWait {
    /// The client's last append-only file record when it asked.
    pub sequence: u64,
    /// The fsync of `sequence` would end the wait (WAITAOF with numlocal 1 and no
    /// replicas asked for); otherwise only the timeout does.
    pub until_synced: bool,
    /// How long at most (`None`: for ever).
    pub timeout: Option<Duration>,
    /// The reply's shape.
    pub reply: AckReply,
}

/// What WAIT and WAITAOF answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckReply {
    /// WAIT: the replicas reached.
    Replicas,
    /// WAITAOF: `[numlocal, numreplicas]`.
    LocalAndReplicas,
}

const WAITS: CommandSpec = CommandSpec {
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["@slow", "@connection"],
    ..BASE
};

/// `WAIT numreplicas timeout`
pub const WAIT: CommandSpec = CommandSpec {
    name: "wait",
    full_name: "wait",
    arity: 3,
    since: "3.0.0",
    summary: "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
    handler: Some(|session, out, args| {
        let Some((replicas, timeout)) = parse_count_and_timeout(out, &args[1], &args[2]) else {
            return Flow::Continue;
        };
        if replicas <= 0 || session.executing_transaction {
            out.reply().integer(0);
            return Flow::Continue;
        }
        session.ack_wait = Some(AckWait {
            sequence: session.last_logged(),
            until_synced: false,
            timeout,
            reply: AckReply::Replicas,
        });
        Flow::WaitAcks
    }),
    ..WAITS
};

/// `WAITAOF numlocal numreplicas timeout`
pub const WAITAOF: CommandSpec = CommandSpec {
    name: "waitaof",
    full_name: "waitaof",
    arity: 4,
    since: "7.2.0",
    summary: "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the primary and/or replicas.",
    handler: Some(waitaof),
    ..WAITS
};

fn waitaof(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(local) = parse_i64(&args[1]) else {
        out.error(NOT_AN_INTEGER);
        return Flow::Continue;
    };
    let Some((replicas, timeout)) = parse_count_and_timeout(out, &args[2], &args[3]) else {
        return Flow::Continue;
    };
    if local > 0 && session.shared.persistence().is_none() {
        out.error("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.");
        return Flow::Continue;
    }
    let sequence = session.last_logged();
    let synced = locally_synced(&session.shared, sequence);
    if (replicas <= 0 && (local <= 0 || synced)) || session.executing_transaction {
        write_ack(
            &mut out.reply(),
            &session.shared,
            sequence,
            AckReply::LocalAndReplicas,
        );
        return Flow::Continue;
    }
    session.ack_wait = Some(AckWait {
        sequence,
        until_synced: replicas <= 0,
        timeout,
        reply: AckReply::LocalAndReplicas,
    });
    Flow::WaitAcks
}

/// A replica count and a timeout in milliseconds, with Redis's errors.
fn parse_count_and_timeout(
    out: &mut Output<'_>,
    count: &[u8],
    timeout: &[u8],
) -> Option<(i64, Option<Duration>)> {
    let Some(count) = parse_i64(count) else {
        out.error(NOT_AN_INTEGER);
        return None;
    };
    match parse_timeout_millis(timeout) {
        Ok(timeout) => Some((count, timeout)),
        Err(error) => {
            out.error(error);
            None
        }
    }
}

/// Whether append-only file record `sequence` is on disk (false with the file off; with
/// no record to wait for, true as soon as the file is on).
pub fn locally_synced(shared: &Shared, sequence: u64) -> bool {
    let persistence = shared.persistence_now();
    let Some(persistence) = persistence.as_ref() else {
        return false;
    };
    let writer = persistence.writer();
    // A file turned off and on again numbers its records from 1 anew.
    writer.is_synced(sequence.min(writer.last_sequence()))
}

/// The reply once the wait is over: `[numlocal, numreplicas]` for WAITAOF, the replica
/// count for WAIT (Herald has none).
pub fn write_ack(reply: &mut ReplyWriter<'_>, shared: &Shared, sequence: u64, shape: AckReply) {
    if shape == AckReply::LocalAndReplicas {
        reply.array(2);
        reply.integer(i64::from(locally_synced(shared, sequence)));
    }
    reply.integer(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use herald_proto::Protocol;

    fn parsed(count: &str, timeout: &str) -> Result<(i64, Option<Duration>), String> {
        let mut buffer = BytesMut::new();
        let mut out = crate::session::Output::for_test(&mut buffer, Protocol::Resp2);
        parse_count_and_timeout(&mut out, count.as_bytes(), timeout.as_bytes())
            .ok_or_else(|| String::from_utf8_lossy(&buffer).into_owned())
    }

    #[test]
    fn counts_and_timeouts_parse_with_redis_errors() {
        assert_eq!(parsed("1", "0"), Ok((1, None)));
        assert_eq!(
            parsed("0", "250"),
            Ok((0, Some(Duration::from_millis(250))))
        );
        assert_eq!(parsed("x", "1"), Err(format!("-{NOT_AN_INTEGER}\r\n")));
        assert_eq!(
            parsed("1", "1.5"),
            Err("-ERR timeout is not an integer or out of range\r\n".to_owned())
        );
        assert_eq!(
            parsed("1", "-1"),
            Err("-ERR timeout is negative\r\n".to_owned())
        );
    }
}
