//! XINFO STREAM (with FULL), XINFO GROUPS, XINFO CONSUMERS and XINFO HELP, with the
//! fields of Redis 7.2 (`active-time` and `inactive` for consumers,
//! `recorded-first-entry-id` for streams).
//!
//! `radix-tree-keys` reports Herald's entry blocks and `radix-tree-nodes` the same figure
//! plus one for the tree root: Herald keeps a B-tree, not a radix tree, and the figures
//! only describe memory layout.

use bytes::Bytes;
use herald_proto::ReplyWriter;
use herald_store::stream::consume::full_entries;
use herald_store::stream::ops;
use herald_store::stream::Stream;
use herald_store::StoreError;

use super::streams::{write_entries, write_entry, write_id};
use super::streams_groups::subcommand_syntax_error;
use super::{flag, parse_i64, reply_help, with_db, CommandSpec, BASE, NOT_AN_INTEGER};
use crate::session::{Flow, Output, Session};

fn key_label(reply: &mut ReplyWriter<'_>, label: &str) {
    reply.bulk(label.as_bytes());
}

fn optional_integer(reply: &mut ReplyWriter<'_>, value: Option<i64>) {
    match value {
        Some(n) => reply.integer(n),
        None => reply.null(),
    }
}

fn write_header(reply: &mut ReplyWriter<'_>, stream: &Stream) {
    key_label(reply, "length");
    reply.integer(stream.len() as i64);
    key_label(reply, "radix-tree-keys");
    reply.integer(stream.entries().blocks() as i64);
    key_label(reply, "radix-tree-nodes");
    reply.integer(stream.entries().blocks() as i64 + 1);
    key_label(reply, "last-generated-id");
    write_id(reply, stream.last_id());
    key_label(reply, "max-deleted-entry-id");
    write_id(reply, stream.max_deleted_id());
    key_label(reply, "entries-added");
    reply.integer(stream.entries_added() as i64);
    key_label(reply, "recorded-first-entry-id");
    write_id(reply, stream.first_id());
}

fn write_stream_summary(reply: &mut ReplyWriter<'_>, stream: &Stream) {
    reply.map(10);
    write_header(reply, stream);
    key_label(reply, "groups");
    reply.integer(stream.groups.len() as i64);
    for (label, entry) in [
        ("first-entry", stream.entries().first()),
        ("last-entry", stream.entries().last()),
    ] {
        key_label(reply, label);
        match entry {
            Some(entry) => write_entry(reply, entry.id, Some(&entry.fields)),
            None => reply.null(),
        }
    }
}

fn write_stream_full(reply: &mut ReplyWriter<'_>, stream: &Stream, count: usize) {
    let limit = if count == 0 { usize::MAX } else { count };
    reply.map(9);
    write_header(reply, stream);
    key_label(reply, "entries");
    write_entries(reply, &full_entries(stream, count));
    key_label(reply, "groups");
    reply.array(stream.groups.len());
    for (name, group) in &stream.groups {
        reply.map(7);
        key_label(reply, "name");
        reply.bulk(name);
        key_label(reply, "last-delivered-id");
        write_id(reply, group.last_id);
        key_label(reply, "entries-read");
        optional_integer(reply, group.entries_read.map(|n| n as i64));
        key_label(reply, "lag");
        optional_integer(reply, stream.lag(group));
        key_label(reply, "pel-count");
        reply.integer(group.pel.len() as i64);
        key_label(reply, "pending");
        let shown = group.pel.len().min(limit);
        reply.array(shown);
        for (id, pending) in group.pel.iter().take(shown) {
            reply.array(4);
            write_id(reply, *id);
            reply.bulk(&pending.consumer);
            reply.integer(pending.delivered_ms as i64);
            reply.integer(pending.deliveries as i64);
        }
        key_label(reply, "consumers");
        reply.array(group.consumers.len());
        for (consumer_name, consumer) in &group.consumers {
            reply.map(5);
            key_label(reply, "name");
            reply.bulk(consumer_name);
            key_label(reply, "seen-time");
            reply.integer(consumer.seen_ms as i64);
            key_label(reply, "active-time");
            reply.integer(consumer.active_ms.map_or(-1, |at| at as i64));
            key_label(reply, "pel-count");
            reply.integer(consumer.pending.len() as i64);
            key_label(reply, "pending");
            let shown = consumer.pending.len().min(limit);
            reply.array(shown);
            for id in consumer.pending.iter().take(shown) {
                let (delivered, deliveries) = group
                    .pel
                    .get(id)
                    .map_or((0, 0), |p| (p.delivered_ms, p.deliveries));
                reply.array(3);
                write_id(reply, *id);
                reply.integer(delivered as i64);
                reply.integer(deliveries as i64);
            }
        }
    }
}

/// Default COUNT of XINFO STREAM FULL (Redis: 10).
const FULL_DEFAULT_COUNT: usize = 10;

fn xinfo_stream(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let full = match &args[3..] {
        [] => None,
        [word] if word.eq_ignore_ascii_case(b"full") => Some(FULL_DEFAULT_COUNT),
        [word, option, value]
            if word.eq_ignore_ascii_case(b"full") && option.eq_ignore_ascii_case(b"count") =>
        {
            match parse_i64(value) {
                Some(n) => Some(n.max(0) as usize),
                None => {
                    out.error(NOT_AN_INTEGER);
                    return Flow::Continue;
                }
            }
        }
        _ => {
            subcommand_syntax_error(out, &args[1], "XINFO");
            return Flow::Continue;
        }
    };
    // Written under the keyspace lock: the reply borrows the stream.
    let mut buffer = bytes::BytesMut::new();
    let protocol = session.protocol;
    let written = with_db(session, out, |db, now| {
        let stream = ops::stream(db, &args[2], now)?.ok_or(StoreError::NoSuchKey)?;
        let mut reply = ReplyWriter::new(&mut buffer, protocol);
        match full {
            None => write_stream_summary(&mut reply, stream),
            Some(count) => write_stream_full(&mut reply, stream, count),
        }
        Ok(())
    });
    if written.is_some() {
        out.reply().raw(&buffer);
    }
    Flow::Continue
}

fn xinfo_groups(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut buffer = bytes::BytesMut::new();
    let protocol = session.protocol;
    let written = with_db(session, out, |db, now| {
        let stream = ops::stream(db, &args[2], now)?.ok_or(StoreError::NoSuchKey)?;
        let mut reply = ReplyWriter::new(&mut buffer, protocol);
        reply.array(stream.groups.len());
        for (name, group) in &stream.groups {
            reply.map(6);
            key_label(&mut reply, "name");
            reply.bulk(name);
            key_label(&mut reply, "consumers");
            reply.integer(group.consumers.len() as i64);
            key_label(&mut reply, "pending");
            reply.integer(group.pel.len() as i64);
            key_label(&mut reply, "last-delivered-id");
            write_id(&mut reply, group.last_id);
            key_label(&mut reply, "entries-read");
            optional_integer(&mut reply, group.entries_read.map(|n| n as i64));
            key_label(&mut reply, "lag");
            optional_integer(&mut reply, stream.lag(group));
        }
        Ok(())
    });
    if written.is_some() {
        out.reply().raw(&buffer);
    }
    Flow::Continue
}

fn xinfo_consumers(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut buffer = bytes::BytesMut::new();
    let protocol = session.protocol;
    let written = with_db(session, out, |db, now| {
        let stream = ops::stream(db, &args[2], now)?.ok_or(StoreError::NoSuchKey)?;
        let group = stream.groups.get(&args[3][..]).ok_or_else(|| {
            StoreError::Custom(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(&args[3]),
                String::from_utf8_lossy(&args[2])
            ))
        })?;
        let mut reply = ReplyWriter::new(&mut buffer, protocol);
        reply.array(group.consumers.len());
        for (name, consumer) in &group.consumers {
            reply.map(4);
            key_label(&mut reply, "name");
            reply.bulk(name);
            key_label(&mut reply, "pending");
            reply.integer(consumer.pending.len() as i64);
            key_label(&mut reply, "idle");
            reply.integer(now.saturating_sub(consumer.seen_ms) as i64);
            key_label(&mut reply, "inactive");
            reply.integer(
                consumer
                    .active_ms
                    .map_or(-1, |at| now.saturating_sub(at) as i64),
            );
        }
        Ok(())
    });
    if written.is_some() {
        out.reply().raw(&buffer);
    }
    Flow::Continue
}

const XINFO_SUB: CommandSpec = CommandSpec {
    group: "stream",
    flags: flag::READONLY,
    since: "5.0.0",
    complexity: "O(1)",
    acl_categories: &["@read", "@stream", "@slow"],
    ..BASE
};

/// `XINFO <subcommand>`
pub const XINFO: CommandSpec = CommandSpec {
    name: "xinfo",
    full_name: "xinfo",
    arity: -2,
    group: "stream",
    since: "5.0.0",
    summary: "A container for stream introspection commands.",
    complexity: "Depends on subcommand.",
    acl_categories: &["@slow"],
    subcommands: &[
        CommandSpec {
            name: "stream",
            full_name: "xinfo|stream",
            arity: -3,
            summary: "Returns information about a stream.",
            handler: Some(xinfo_stream),
            ..XINFO_SUB
        },
        CommandSpec {
            name: "groups",
            full_name: "xinfo|groups",
            arity: 3,
            summary: "Returns a list of the consumer groups of a stream.",
            handler: Some(xinfo_groups),
            ..XINFO_SUB
        },
        CommandSpec {
            name: "consumers",
            full_name: "xinfo|consumers",
            arity: 4,
            summary: "Returns a list of the consumers in a consumer group.",
            handler: Some(xinfo_consumers),
            ..XINFO_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "xinfo|help",
            arity: 2,
            flags: flag::LOADING | flag::STALE,
            summary: "Returns helpful text about the different subcommands.",
            acl_categories: &["@stream", "@slow"],
            handler: Some(|_, out, _| {
                reply_help(
                    out,
                    "xinfo",
                    &[
                        "CONSUMERS <key> <groupname>",
                        "    Show consumers of <groupname>.",
                        "GROUPS <key>",
                        "    Show the stream consumer groups.",
                        "STREAM <key> [FULL [COUNT <count>]",
                        "    Show information about the stream.",
                    ],
                );
                Flow::Continue
            }),
            ..XINFO_SUB
        },
    ],
    ..BASE
};
