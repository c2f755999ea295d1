//! Consumer-group commands: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER,
//! HELP), XACK, XPENDING, XCLAIM and XAUTOCLAIM.

use bytes::Bytes;
use herald_store::stream::claim::{self, ClaimOptions, PendingQuery};
use herald_store::stream::consume::{self, GroupStart};
use herald_store::stream::id::{self, BoundSide};
use herald_store::stream::{ops, propagate};

use super::streams::{or_reply, parse_ids, write_delivered, write_id, WRITE};
use super::{
    flag, parse_i64, reply_help, with_db, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR,
};
use crate::server::unix_time_millis;
use crate::session::{Flow, Output, Session};

fn parse_group_start(out: &mut Output<'_>, arg: &[u8]) -> Option<GroupStart> {
    if arg == b"$" {
        return Some(GroupStart::Last);
    }
    or_reply(out, id::parse_strict(arg)).map(GroupStart::At)
}

/// Redis's reply to a bad option of a subcommand (`addReplySubcommandSyntaxError`),
/// naming the subcommand as the client typed it.
pub fn subcommand_syntax_error(out: &mut Output<'_>, typed: &[u8], container: &str) {
    let typed = String::from_utf8_lossy(&typed[..typed.len().min(128)]);
    out.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{typed}'. Try {container} HELP."
    ));
}

/// Parses `[MKSTREAM] [ENTRIESREAD n]` after `XGROUP <typed> key group id`;
/// `(mkstream, entries_read)`.
fn parse_group_options(
    out: &mut Output<'_>,
    typed: &[u8],
    args: &[Bytes],
    allow_mkstream: bool,
) -> Option<(bool, Option<u64>)> {
    let (mut mkstream, mut entries_read) = (false, None);
    let mut i = 0;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        match &option[..] {
            b"MKSTREAM" if allow_mkstream => {
                mkstream = true;
                i += 1;
            }
            b"ENTRIESREAD" if i + 1 < args.len() => {
                match parse_i64(&args[i + 1]) {
                    None => {
                        out.error(NOT_AN_INTEGER);
                        return None;
                    }
                    Some(n) if n < -1 => {
                        out.error("ERR value for ENTRIESREAD must be positive or -1");
                        return None;
                    }
                    Some(-1) => entries_read = None,
                    Some(n) => entries_read = Some(n as u64),
                }
                i += 2;
            }
            _ => {
                subcommand_syntax_error(out, typed, "XGROUP");
                return None;
            }
        }
    }
    Some((mkstream, entries_read))
}

const XGROUP_SUB: CommandSpec = CommandSpec {
    group: "stream",
    flags: flag::WRITE,
    since: "5.0.0",
    acl_categories: &["@write", "@stream", "@slow"],
    ..BASE
};

fn xgroup_create(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some((mkstream, entries_read)) = parse_group_options(out, &args[1], &args[5..], true)
    else {
        return Flow::Continue;
    };
    let Some(start) = parse_group_start(out, &args[4]) else {
        return Flow::Continue;
    };
    if with_db(session, out, |db, now| {
        consume::create_group(db, &args[2], &args[3], start, mkstream, entries_read, now)
    })
    .is_some()
    {
        out.ok();
    }
    Flow::Continue
}

fn xgroup_setid(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some((_, entries_read)) = parse_group_options(out, &args[1], &args[5..], false) else {
        return Flow::Continue;
    };
    let Some(start) = parse_group_start(out, &args[4]) else {
        return Flow::Continue;
    };
    if with_db(session, out, |db, now| {
        consume::set_group_id(db, &args[2], &args[3], start, entries_read, now)
    })
    .is_some()
    {
        out.ok();
    }
    Flow::Continue
}

/// `XGROUP <subcommand>`
pub const XGROUP: CommandSpec = CommandSpec {
    name: "xgroup",
    full_name: "xgroup",
    arity: -2,
    group: "stream",
    since: "5.0.0",
    summary: "A container for consumer groups commands.",
    complexity: "Depends on subcommand.",
    acl_categories: &["@slow"],
    subcommands: &[
        CommandSpec {
            name: "create",
            full_name: "xgroup|create",
            arity: -5,
            summary: "Creates a consumer group.",
            handler: Some(xgroup_create),
            ..XGROUP_SUB
        },
        CommandSpec {
            name: "setid",
            full_name: "xgroup|setid",
            arity: -5,
            summary: "Sets the last-delivered ID of a consumer group.",
            handler: Some(xgroup_setid),
            ..XGROUP_SUB
        },
        CommandSpec {
            name: "destroy",
            full_name: "xgroup|destroy",
            arity: 4,
            summary: "Destroys a consumer group.",
            complexity:
                "O(N) where N is the number of entries in the group's pending entries list (PEL).",
            handler: Some(|session, out, args| {
                if let Some(existed) = with_db(session, out, |db, now| {
                    consume::destroy_group(db, &args[2], &args[3], now)
                }) {
                    out.reply().integer(i64::from(existed));
                }
                Flow::Continue
            }),
            ..XGROUP_SUB
        },
        CommandSpec {
            name: "createconsumer",
            full_name: "xgroup|createconsumer",
            arity: 5,
            since: "6.2.0",
            summary: "Creates a consumer in a consumer group.",
            handler: Some(|session, out, args| {
                if let Some(created) = with_db(session, out, |db, now| {
                    consume::create_consumer(db, &args[2], &args[3], &args[4], now)
                }) {
                    out.reply().integer(i64::from(created));
                }
                Flow::Continue
            }),
            ..XGROUP_SUB
        },
        CommandSpec {
            name: "delconsumer",
            full_name: "xgroup|delconsumer",
            arity: 5,
            summary: "Deletes a consumer from a consumer group.",
            handler: Some(|session, out, args| {
                if let Some(held) = with_db(session, out, |db, now| {
                    consume::delete_consumer(db, &args[2], &args[3], &args[4], now)
                }) {
                    out.reply().integer(held as i64);
                }
                Flow::Continue
            }),
            ..XGROUP_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "xgroup|help",
            arity: 2,
            flags: flag::LOADING | flag::STALE,
            summary: "Returns helpful text about the different subcommands.",
            acl_categories: &["@stream", "@slow"],
            handler: Some(|_, out, _| {
                reply_help(
                    out,
                    "xgroup",
                    &[
                        "CREATE <key> <groupname> <id|$> [option]",
                        "    Create a new consumer group. Options are:",
                        "    * MKSTREAM",
                        "      Create the empty stream if it does not exist.",
                        "    * ENTRIESREAD entries_read",
                        "      Set the group's entries_read counter (internal use).",
                        "CREATECONSUMER <key> <groupname> <consumer>",
                        "    Create a new consumer in the specified group.",
                        "DELCONSUMER <key> <groupname> <consumer>",
                        "    Remove the specified consumer.",
                        "DESTROY <key> <groupname>",
                        "    Remove the specified group.",
                        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                        "    Set the current group ID and entries_read counter.",
                    ],
                );
                Flow::Continue
            }),
            ..XGROUP_SUB
        },
    ],
    ..BASE
};

/// `XACK key group id [id ...]`
pub const XACK: CommandSpec = CommandSpec {
    name: "xack",
    full_name: "xack",
    arity: -4,
    summary: "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
    complexity: "O(1) for each message ID processed.",
    handler: Some(|session, out, args| {
        let Some(ids) = parse_ids(out, &args[3..]) else {
            return Flow::Continue;
        };
        if let Some(acked) = with_db(session, out, |db, now| consume::ack(db, &args[1], &args[2], &ids, now)) {
            out.reply().integer(acked as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

fn xpending(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        out.error(SYNTAX_ERROR);
        return Flow::Continue;
    }
    if args.len() == 3 {
        if let Some(summary) = with_db(session, out, |db, now| {
            claim::pending_summary(db, &args[1], &args[2], now)
        }) {
            let mut reply = out.reply();
            reply.array(4);
            reply.integer(summary.count as i64);
            match summary.bounds {
                None => {
                    reply.null();
                    reply.null();
                    reply.null_array();
                }
                Some((first, last)) => {
                    write_id(&mut reply, first);
                    write_id(&mut reply, last);
                    reply.array(summary.consumers.len());
                    for (name, held) in &summary.consumers {
                        reply.array(2);
                        reply.bulk(name);
                        reply.bulk(itoa::Buffer::new().format(*held).as_bytes());
                    }
                }
            }
        }
        return Flow::Continue;
    }
    let mut at = 3;
    let mut min_idle_ms = 0;
    if args[3].eq_ignore_ascii_case(b"idle") {
        let Some(idle) = parse_i64(&args[4]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if args.len() < 8 {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
        min_idle_ms = idle.max(0) as u64;
        at = 5;
    }
    let Some(count) = parse_i64(&args[at + 2]) else {
        out.error(NOT_AN_INTEGER);
        return Flow::Continue;
    };
    let Some(start) = or_reply(out, id::parse_bound(&args[at], BoundSide::Start)) else {
        return Flow::Continue;
    };
    let Some(end) = or_reply(out, id::parse_bound(&args[at + 1], BoundSide::End)) else {
        return Flow::Continue;
    };
    // Redis takes the argument after `count` as the consumer and ignores the rest.
    let extra = &args[at + 3..];
    let query = PendingQuery {
        start,
        end,
        count: count.max(0) as usize,
        min_idle_ms,
        consumer: extra.first().cloned(),
    };
    if let Some(found) = with_db(session, out, |db, now| {
        claim::pending_range(db, &args[1], &args[2], &query, now)
    }) {
        let now = unix_time_millis();
        let mut reply = out.reply();
        reply.array(found.len());
        for (id, pending) in &found {
            reply.array(4);
            write_id(&mut reply, *id);
            reply.bulk(&pending.consumer);
            reply.integer(now.saturating_sub(pending.delivered_ms) as i64);
            reply.integer(pending.deliveries as i64);
        }
    }
    Flow::Continue
}

/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`
pub const XPENDING: CommandSpec = CommandSpec {
    name: "xpending",
    full_name: "xpending",
    arity: -3,
    flags: flag::READONLY,
    summary: "Returns the information and entries from a stream consumer group's pending entries list.",
    complexity: "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
    acl_categories: &["@read", "@stream", "@slow"],
    handler: Some(xpending),
    ..WRITE
};

fn parse_min_idle(out: &mut Output<'_>, arg: &[u8], command: &str) -> Option<u64> {
    match parse_i64(arg) {
        Some(ms) => Some(ms.max(0) as u64),
        None => {
            out.error(&format!("ERR Invalid min-idle-time argument for {command}"));
            None
        }
    }
}

fn xclaim(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(min_idle_ms) = parse_min_idle(out, &args[4], "XCLAIM") else {
        return Flow::Continue;
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while let Some(Ok(id)) = args.get(j).map(|arg| id::parse_strict(arg)) {
        ids.push(id);
        j += 1;
    }
    let now = unix_time_millis();
    let mut options = ClaimOptions {
        min_idle_ms,
        ..ClaimOptions::default()
    };
    let mut delivered_at: Option<i128> = None;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let option = args[j].to_ascii_uppercase();
        let number = |out: &mut Output<'_>, name: &str| -> Option<i64> {
            let parsed = parse_i64(&args[j + 1]);
            if parsed.is_none() {
                out.error(&format!("ERR Invalid {name} option argument for XCLAIM"));
            }
            parsed
        };
        match &option[..] {
            b"FORCE" => options.force = true,
            b"JUSTID" => options.just_id = true,
            b"IDLE" if more >= 1 => {
                let Some(idle) = number(out, "IDLE") else {
                    return Flow::Continue;
                };
                delivered_at = Some(i128::from(now) - i128::from(idle));
                j += 1;
            }
            b"TIME" if more >= 1 => {
                let Some(at) = number(out, "TIME") else {
                    return Flow::Continue;
                };
                delivered_at = Some(i128::from(at));
                j += 1;
            }
            b"RETRYCOUNT" if more >= 1 => {
                let Some(count) = number(out, "RETRYCOUNT") else {
                    return Flow::Continue;
                };
                options.retry_count = Some(count.max(0) as u64);
                j += 1;
            }
            b"LASTID" if more >= 1 => {
                let Some(last) = or_reply(out, id::parse_strict(&args[j + 1])) else {
                    return Flow::Continue;
                };
                options.last_id = Some(last);
                j += 1;
            }
            _ => {
                out.error(&format!(
                    "ERR Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(&args[j])
                ));
                return Flow::Continue;
            }
        }
        j += 1;
    }
    // A bogus delivery time (negative, in the future) becomes now, as in Redis: clients
    // compute it from their own clocks.
    options.delivered_ms = delivered_at
        .filter(|at| *at >= 0 && *at <= i128::from(now))
        .map(|at| at as u64);
    let just_id = options.just_id;
    let mut records = Vec::new();
    if let Some(claimed) = with_db(session, out, |db, now| {
        let claimed = claim::claim(db, &args[1], &args[2], &args[3], &ids, &options, now)?;
        if let Some(stream) = ops::stream(db, &args[1], now)? {
            records = propagate::group_records(stream, &args[1], &args[2], Some(&args[3]), &ids);
        }
        Ok(claimed)
    }) {
        session.propagate_as(records);
        write_delivered(&mut out.reply(), &claimed, just_id);
    }
    Flow::Continue
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]`
pub const XCLAIM: CommandSpec = CommandSpec {
    name: "xclaim",
    full_name: "xclaim",
    arity: -6,
    summary: "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
    complexity: "O(log N) with N being the number of messages in the PEL of the consumer group.",
    handler: Some(xclaim),
    ..WRITE
};

/// Most entries one XAUTOCLAIM may ask for (Redis: `LONG_MAX / max(sizeof(streamID), 10)`).
const AUTOCLAIM_MAX_COUNT: i64 = i64::MAX / 16;

fn xautoclaim(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(min_idle_ms) = parse_min_idle(out, &args[4], "XAUTOCLAIM") else {
        return Flow::Continue;
    };
    let Some(start) = or_reply(out, id::parse_bound(&args[5], BoundSide::Start)) else {
        return Flow::Continue;
    };
    let (mut count, mut just_id) = (100usize, false);
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let option = args[j].to_ascii_uppercase();
        match &option[..] {
            b"COUNT" if more >= 1 => {
                match parse_i64(&args[j + 1]) {
                    Some(n) if (1..=AUTOCLAIM_MAX_COUNT).contains(&n) => count = n as usize,
                    _ => {
                        out.error("ERR COUNT must be > 0");
                        return Flow::Continue;
                    }
                }
                j += 1;
            }
            b"JUSTID" => just_id = true,
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        }
        j += 1;
    }
    let mut records = Vec::new();
    if let Some(result) = with_db(session, out, |db, now| {
        let result = claim::auto_claim(
            db,
            &args[1],
            &args[2],
            &args[3],
            min_idle_ms,
            start,
            count,
            just_id,
            now,
        )?;
        let ids: Vec<_> = result
            .claimed
            .iter()
            .map(|(id, _)| *id)
            .chain(result.deleted.iter().copied())
            .collect();
        if let Some(stream) = ops::stream(db, &args[1], now)? {
            records = propagate::group_records(stream, &args[1], &args[2], Some(&args[3]), &ids);
        }
        Ok(result)
    }) {
        session.propagate_as(records);
        let mut reply = out.reply();
        reply.array(3);
        write_id(&mut reply, result.next);
        write_delivered(&mut reply, &result.claimed, just_id);
        reply.array(result.deleted.len());
        for id in &result.deleted {
            write_id(&mut reply, *id);
        }
    }
    Flow::Continue
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`
pub const XAUTOCLAIM: CommandSpec = CommandSpec {
    name: "xautoclaim",
    full_name: "xautoclaim",
    arity: -6,
    since: "6.2.0",
    summary: "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
    complexity: "O(1) if COUNT is small.",
    handler: Some(xautoclaim),
    ..WRITE
};
