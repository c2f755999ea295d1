//! Stream commands that read and write entries: XADD, XLEN, XRANGE, XREVRANGE, XDEL,
//! XTRIM, XSETID, and the reply shapes every stream command shares.
//!
//! The reading family (XREAD, XREADGROUP) is in [`super::streams_read`], consumer groups
//! in [`super::streams_groups`], XINFO in [`super::streams_info`]. Handlers parse with
//! Redis's rules and error texts, then call `herald_store::stream`; the store returns the
//! concrete IDs it produced (XADD's reply), which is what a command log would record.

use bytes::Bytes;
use herald_proto::{Protocol, ReplyWriter};
use herald_store::stream::consume::{Delivered, GroupRead};
use herald_store::stream::id::{self, BoundSide, StreamId};
use herald_store::stream::ops::{self, TrimSpec};
use herald_store::stream::propagate;
use herald_store::stream::{StreamEntry, Trim};
use herald_store::StoreError;

use super::{flag, parse_i64, with_db, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR};
use crate::session::{Flow, Output, Session};

/// Defaults of the read-only stream commands.
pub const READ: CommandSpec = CommandSpec {
    group: "stream",
    flags: flag::READONLY,
    since: "5.0.0",
    acl_categories: &["@read", "@stream", "@slow"],
    ..BASE
};

/// Defaults of the writing stream commands.
pub const WRITE: CommandSpec = CommandSpec {
    group: "stream",
    flags: flag::WRITE | flag::FAST,
    since: "5.0.0",
    acl_categories: &["@write", "@stream", "@fast"],
    ..BASE
};

/// Replies with the error when `result` failed (a store error or a parse error text);
/// the value otherwise.
pub fn or_reply<T, E: std::fmt::Display>(out: &mut Output<'_>, result: Result<T, E>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            out.error(&err.to_string());
            None
        }
    }
}

/// An ID as a bulk string.
pub fn write_id(reply: &mut ReplyWriter<'_>, id: StreamId) {
    reply.bulk(id.text().as_bytes());
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for an entry deleted while pending.
pub fn write_entry(reply: &mut ReplyWriter<'_>, id: StreamId, fields: Option<&[Bytes]>) {
    reply.array(2);
    write_id(reply, id);
    match fields {
        Some(fields) => {
            reply.array(fields.len());
            for field in fields {
                reply.bulk(field);
            }
        }
        None => reply.null_array(),
    }
}

/// An array of entries.
pub fn write_entries(reply: &mut ReplyWriter<'_>, entries: &[StreamEntry]) {
    reply.array(entries.len());
    for entry in entries {
        write_entry(reply, entry.id, Some(&entry.fields));
    }
}

/// An array of delivered entries (XREADGROUP, XCLAIM): IDs only when `just_id`.
pub fn write_delivered(reply: &mut ReplyWriter<'_>, entries: &[Delivered], just_id: bool) {
    reply.array(entries.len());
    for (id, fields) in entries {
        if just_id {
            write_id(reply, *id);
        } else {
            write_entry(reply, *id, fields.as_deref());
        }
    }
}

fn keyed_header(reply: &mut ReplyWriter<'_>, len: usize) {
    // RESP3 replies key -> entries as a map, RESP2 as [[key, entries], ...].
    if reply.protocol() == Protocol::Resp3 {
        reply.map(len);
    } else {
        reply.array(len);
    }
}

fn keyed_item(reply: &mut ReplyWriter<'_>, key: &[u8]) {
    if reply.protocol() != Protocol::Resp3 {
        reply.array(2);
    }
    reply.bulk(key);
}

/// XREAD's reply: per key its entries; null when nothing was read.
pub fn write_streams(reply: &mut ReplyWriter<'_>, found: &[(Bytes, Vec<StreamEntry>)]) {
    if found.is_empty() {
        reply.null_array();
        return;
    }
    keyed_header(reply, found.len());
    for (key, entries) in found {
        keyed_item(reply, key);
        write_entries(reply, entries);
    }
}

/// XREADGROUP's reply: per key its entries; null when nothing was read.
pub fn write_group_reads(reply: &mut ReplyWriter<'_>, found: &[GroupRead]) {
    if found.is_empty() {
        reply.null_array();
        return;
    }
    keyed_header(reply, found.len());
    for read in found {
        keyed_item(reply, &read.key);
        write_delivered(reply, &read.entries, false);
    }
}

/// Parses the trimming options of XADD and XTRIM from `args` (after the key), as
/// Redis's `streamParseAddOrTrimArgsOrReply`. For XADD it stops at the ID argument and
/// returns its index; for XTRIM it consumes everything.
pub struct ParsedTrim {
    /// The trimming asked for.
    pub trim: Option<TrimSpec>,
    /// NOMKSTREAM (XADD only).
    pub no_create: bool,
    /// Index in `args` of XADD's ID argument.
    pub id_at: usize,
}

/// What LIMIT defaults to with `~` (Redis: 100 × `stream-node-max-entries`).
const DEFAULT_APPROX_LIMIT: usize = 100 * herald_store::stream::entries::BLOCK_MAX_ENTRIES as usize;

fn parse_trim_args(args: &[Bytes], xadd: bool) -> Result<ParsedTrim, String> {
    let mut strategy: Option<Trim> = None;
    let mut approx = false;
    let mut limit: Option<i64> = None;
    let mut no_create = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let option = args[i].to_ascii_uppercase();
        match &option[..] {
            b"*" if xadd => break,
            b"MAXLEN" | b"MINID" if more >= 1 => {
                let is_maxlen = &option[..] == b"MAXLEN";
                let conflicting = match strategy {
                    Some(Trim::MaxLen(_)) => !is_maxlen,
                    Some(Trim::MinId(_)) => is_maxlen,
                    None => false,
                };
                if conflicting {
                    return Err(
                        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                            .to_owned(),
                    );
                }
                approx = false;
                if more >= 2 && &args[i + 1][..] == b"~" {
                    approx = true;
                    i += 1;
                } else if more >= 2 && &args[i + 1][..] == b"=" {
                    i += 1;
                }
                let value = &args[i + 1];
                strategy = Some(if is_maxlen {
                    let n = parse_i64(value).ok_or_else(|| NOT_AN_INTEGER.to_owned())?;
                    if n < 0 {
                        return Err("ERR The MAXLEN argument must be >= 0.".to_owned());
                    }
                    Trim::MaxLen(n as usize)
                } else {
                    Trim::MinId(id::parse_strict(value).map_err(|e| e.to_string())?)
                });
                i += 2;
            }
            b"LIMIT" if more >= 1 => {
                let n = parse_i64(&args[i + 1]).ok_or_else(|| NOT_AN_INTEGER.to_owned())?;
                if n < 0 {
                    return Err("ERR The LIMIT argument must be >= 0.".to_owned());
                }
                limit = Some(n);
                i += 2;
            }
            b"NOMKSTREAM" if xadd => {
                no_create = true;
                i += 1;
            }
            _ if xadd => break,
            _ => return Err(SYNTAX_ERROR.to_owned()),
        }
    }
    if limit.is_some() && strategy.is_none() {
        return Err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
                .to_owned(),
        );
    }
    if !xadd && strategy.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".to_owned());
    }
    if limit.is_some() && !approx {
        return Err(
            "ERR syntax error, LIMIT cannot be used without the special ~ option".to_owned(),
        );
    }
    let trim = strategy.map(|strategy| TrimSpec {
        strategy,
        approx,
        limit: if approx {
            match limit {
                Some(0) => None,
                Some(n) => Some(n as usize),
                None => Some(DEFAULT_APPROX_LIMIT),
            }
        } else {
            None
        },
    });
    Ok(ParsedTrim {
        trim,
        no_create,
        id_at: i,
    })
}

/// `XADD key [NOMKSTREAM] [<MAXLEN | MINID> [= | ~] threshold [LIMIT count]] <* | id> field value [field value ...]`
pub const XADD: CommandSpec = CommandSpec {
    name: "xadd",
    full_name: "xadd",
    arity: -5,
    summary: "Appends a new message to a stream. Creates the key if it doesn't exist.",
    complexity: "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
    handler: Some(|session, out, args| {
        let Some(parsed) = or_reply(out, parse_trim_args(args, true)) else {
            return Flow::Continue;
        };
        let Some(id_arg) = args.get(parsed.id_at) else {
            out.error(&super::wrong_arity("xadd"));
            return Flow::Continue;
        };
        let Some(add_id) = or_reply(out, id::parse_add_id(id_arg)) else {
            return Flow::Continue;
        };
        let pairs = &args[parsed.id_at + 1..];
        if pairs.len() < 2 || pairs.len() % 2 == 1 {
            out.error(&super::wrong_arity("xadd"));
            return Flow::Continue;
        }
        let mut trimmed_to = None;
        if let Some(added) = with_db(session, out, |db, now| {
            let before = ops::stream(db, &args[1], now)?.map_or(0, |stream| stream.len());
            let added = ops::add(db, &args[1], pairs, add_id, parsed.no_create, parsed.trim, now)?;
            if let (Some(_), Some(stream)) = (added, ops::stream(db, &args[1], now)?) {
                if stream.len() <= before {
                    trimmed_to = Some(propagate::exact_trim_record(stream, &args[1]));
                }
            }
            Ok(added)
        }) {
            // Logged with the ID it produced and the exact outcome of its trimming, so a
            // replay neither reads the clock nor depends on approximate trimming.
            session.propagate_as(match added {
                None => Vec::new(),
                Some(id) => {
                    let mut record = vec![
                        Bytes::from_static(b"XADD"),
                        args[1].clone(),
                        Bytes::copy_from_slice(id.text().as_bytes()),
                    ];
                    record.extend(pairs.iter().cloned());
                    std::iter::once(record).chain(trimmed_to).collect()
                }
            });
            match added {
                Some(id) => write_id(&mut out.reply(), id),
                None => out.reply().null(),
            }
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `XTRIM key <MAXLEN | MINID> [= | ~] threshold [LIMIT count]`
pub const XTRIM: CommandSpec = CommandSpec {
    name: "xtrim",
    full_name: "xtrim",
    arity: -4,
    flags: flag::WRITE,
    since: "5.0.0",
    summary: "Deletes messages from the beginning of a stream.",
    complexity: "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
    acl_categories: &["@write", "@stream", "@slow"],
    handler: Some(|session, out, args| {
        let spec = match parse_trim_args(args, false) {
            Ok(ParsedTrim { trim: Some(spec), .. }) => spec,
            Ok(ParsedTrim { trim: None, .. }) => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
            Err(err) => {
                out.error(&err);
                return Flow::Continue;
            }
        };
        let mut exact = None;
        if let Some(removed) = with_db(session, out, |db, now| {
            let removed = ops::trim(db, &args[1], spec, now)?;
            if removed > 0 {
                exact = ops::stream(db, &args[1], now)?
                    .map(|stream| propagate::exact_trim_record(stream, &args[1]));
            }
            Ok(removed)
        }) {
            session.propagate_as(exact.into_iter().collect());
            out.reply().integer(removed as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `XLEN key`
pub const XLEN: CommandSpec = CommandSpec {
    name: "xlen",
    full_name: "xlen",
    arity: 2,
    flags: flag::READONLY | flag::FAST,
    summary: "Return the number of messages in a stream.",
    acl_categories: &["@read", "@stream", "@fast"],
    handler: Some(|session, out, args| {
        if let Some(len) = with_db(session, out, |db, now| ops::len(db, &args[1], now)) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..READ
};

fn range_command(
    session: &mut Session,
    out: &mut Output<'_>,
    args: &[Bytes],
    reverse: bool,
) -> Flow {
    let (start_arg, end_arg) = if reverse {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let Some(start) = or_reply(out, id::parse_bound(start_arg, BoundSide::Start)) else {
        return Flow::Continue;
    };
    let Some(end) = or_reply(out, id::parse_bound(end_arg, BoundSide::End)) else {
        return Flow::Continue;
    };
    let mut count = None;
    let mut rest = args[4..].iter();
    while let Some(option) = rest.next() {
        match rest.next() {
            Some(value) if option.eq_ignore_ascii_case(b"count") => {
                let Some(n) = parse_i64(value) else {
                    out.error(NOT_AN_INTEGER);
                    return Flow::Continue;
                };
                count = Some(n.max(0) as usize);
            }
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        }
    }
    let Some(entries) = with_db(session, out, |db, now| {
        if count == Some(0) && ops::stream(db, &args[1], now)?.is_some() {
            return Ok(None);
        }
        ops::range(db, &args[1], start, end, count, reverse, now).map(Some)
    }) else {
        return Flow::Continue;
    };
    match entries {
        // Redis answers COUNT 0 on an existing stream with a null array.
        None => out.reply().null_array(),
        Some(entries) => write_entries(&mut out.reply(), &entries),
    }
    Flow::Continue
}

/// `XRANGE key start end [COUNT count]`
pub const XRANGE: CommandSpec = CommandSpec {
    name: "xrange",
    full_name: "xrange",
    arity: -4,
    summary: "Returns the messages from a stream within a range of IDs.",
    complexity: "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
    handler: Some(|session, out, args| range_command(session, out, args, false)),
    ..READ
};

/// `XREVRANGE key end start [COUNT count]`
pub const XREVRANGE: CommandSpec = CommandSpec {
    name: "xrevrange",
    full_name: "xrevrange",
    summary: "Returns the messages from a stream within a range of IDs in reverse order.",
    handler: Some(|session, out, args| range_command(session, out, args, true)),
    ..XRANGE
};

/// Parses strict IDs (XDEL, XACK), replying with the error of the first bad one.
pub fn parse_ids(out: &mut Output<'_>, args: &[Bytes]) -> Option<Vec<StreamId>> {
    let parsed: Result<Vec<StreamId>, StoreError> =
        args.iter().map(|arg| id::parse_strict(arg)).collect();
    or_reply(out, parsed)
}

/// `XDEL key id [id ...]`
pub const XDEL: CommandSpec = CommandSpec {
    name: "xdel",
    full_name: "xdel",
    arity: -3,
    summary: "Returns the number of messages after removing them from a stream.",
    complexity: "O(1) for each single item to delete in the stream, regardless of the stream size.",
    handler: Some(|session, out, args| {
        let Some(ids) = parse_ids(out, &args[2..]) else {
            return Flow::Continue;
        };
        if let Some(deleted) = with_db(session, out, |db, now| ops::delete(db, &args[1], &ids, now))
        {
            out.reply().integer(deleted as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]`
pub const XSETID: CommandSpec = CommandSpec {
    name: "xsetid",
    full_name: "xsetid",
    arity: -3,
    summary: "An internal command for replicating stream values.",
    handler: Some(|session, out, args| {
        let Some(last) = or_reply(out, id::parse_strict(&args[2])) else {
            return Flow::Continue;
        };
        let (mut added, mut max_deleted) = (None, None);
        let mut rest = args[3..].iter();
        while let Some(option) = rest.next() {
            let Some(value) = rest.next() else {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            };
            match &option.to_ascii_uppercase()[..] {
                b"ENTRIESADDED" => match parse_i64(value) {
                    None => {
                        out.error(NOT_AN_INTEGER);
                        return Flow::Continue;
                    }
                    Some(n) if n < 0 => {
                        out.error("ERR entries_added must be positive");
                        return Flow::Continue;
                    }
                    Some(n) => added = Some(n as u64),
                },
                b"MAXDELETEDID" => {
                    let Some(id) = or_reply(out, id::parse_strict(value)) else {
                        return Flow::Continue;
                    };
                    max_deleted = Some(id);
                }
                _ => {
                    out.error(SYNTAX_ERROR);
                    return Flow::Continue;
                }
            }
        }
        if with_db(session, out, |db, now| {
            ops::set_id(db, &args[1], last, added, max_deleted, now)
        })
        .is_some()
        {
            out.ok();
        }
        Flow::Continue
    }),
    ..WRITE
};
