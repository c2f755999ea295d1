//! XREAD and XREADGROUP, with BLOCK.
//!
//! A read that finds nothing and was given BLOCK registers a waiter with the store (under
//! the same lock as the attempt, so no XADD slips between them) and returns
//! [`Flow::Block`]; the connection then waits for the store to serve it or for the
//! timeout, exactly as the blocking list commands do. Inside EXEC nothing blocks: the
//! read answers null at once.

use std::time::Duration;

use bytes::Bytes;
use herald_store::blocking::{BlockedOp, Served, Waiter};
use herald_store::stream::consume::{self, GroupFrom};
use herald_store::stream::id::{self, StreamId};
use herald_store::stream::ops::{self, ReadFrom};
use herald_store::stream::propagate;

use super::streams::{or_reply, write_group_reads, write_streams};
use super::{flag, parse_i64, with_db, CommandSpec, BASE, SYNTAX_ERROR};
use crate::session::{Blocked, BlockedReply, Flow, Output, Session};

/// The parsed options of XREAD / XREADGROUP.
struct ReadArgs {
    count: Option<usize>,
    block: Option<Option<Duration>>,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    keys: Vec<Bytes>,
    ids: Vec<Bytes>,
}

fn parse_read_args(args: &[Bytes], group_read: bool) -> Result<ReadArgs, String> {
    let mut parsed = ReadArgs {
        count: None,
        block: None,
        group: None,
        noack: false,
        keys: Vec::new(),
        ids: Vec::new(),
    };
    let mut streams_at = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let option = args[i].to_ascii_uppercase();
        match &option[..] {
            b"BLOCK" if more >= 1 => {
                parsed.block = Some(super::parse_timeout_millis(&args[i + 1])?);
                i += 2;
            }
            b"COUNT" if more >= 1 => {
                let Some(n) = parse_i64(&args[i + 1]) else {
                    return Err(super::NOT_AN_INTEGER.to_owned());
                };
                parsed.count = (n > 0).then_some(n as usize);
                i += 2;
            }
            b"STREAMS" if more >= 1 => {
                streams_at = Some(i + 1);
                break;
            }
            b"GROUP" if more >= 2 => {
                if !group_read {
                    return Err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.".to_owned());
                }
                parsed.group = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            }
            b"NOACK" => {
                if !group_read {
                    return Err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.".to_owned());
                }
                parsed.noack = true;
                i += 1;
            }
            _ => return Err(SYNTAX_ERROR.to_owned()),
        }
    }
    let Some(at) = streams_at else {
        return Err(SYNTAX_ERROR.to_owned());
    };
    let rest = &args[at..];
    if !rest.len().is_multiple_of(2) {
        let (name, symbol) = if group_read {
            ("xreadgroup", '>')
        } else {
            ("xread", '$')
        };
        return Err(format!(
            "ERR Unbalanced '{name}' list of streams: for each stream key an ID or '{symbol}' must be specified."
        ));
    }
    if group_read && parsed.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".to_owned());
    }
    let (keys, ids) = rest.split_at(rest.len() / 2);
    parsed.keys = keys.to_vec();
    parsed.ids = ids.to_vec();
    Ok(parsed)
}

/// How an XREAD start argument reads before `$` is resolved.
enum XReadStart {
    Dollar,
    Last,
    After(StreamId),
}

fn parse_xread_start(arg: &[u8]) -> Result<XReadStart, String> {
    match arg {
        b"$" => Ok(XReadStart::Dollar),
        b"+" => Ok(XReadStart::Last),
        b">" => Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".to_owned()),
        _ => id::parse_id(arg, 0, true)
            .map(XReadStart::After)
            .map_err(|e| e.to_string()),
    }
}

fn parse_group_start(arg: &[u8]) -> Result<GroupFrom, String> {
    match arg {
        b">" => Ok(GroupFrom::New),
        b"$" => Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".to_owned()),
        _ => id::parse_id(arg, 0, true)
            .map(GroupFrom::Pending)
            .map_err(|e| e.to_string()),
    }
}

enum Attempt<T> {
    Found(T),
    Blocked(
        std::sync::Arc<Waiter>,
        tokio::sync::oneshot::Receiver<Served>,
    ),
    Nothing,
}

fn block(
    session: &mut Session,
    waiter: std::sync::Arc<Waiter>,
    served: tokio::sync::oneshot::Receiver<Served>,
    timeout: Option<Duration>,
) -> Flow {
    session.blocked = Some(Blocked {
        waiter,
        served,
        deadline: timeout.map(|timeout| tokio::time::Instant::now() + timeout),
        db: session.db,
        reply: BlockedReply::Streams,
    });
    Flow::Block
}

fn xread(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(parsed) = or_reply(out, parse_read_args(args, false)) else {
        return Flow::Continue;
    };
    let starts: Result<Vec<XReadStart>, String> = parsed
        .ids
        .iter()
        .map(|arg| parse_xread_start(arg))
        .collect();
    let Some(starts) = or_reply(out, starts) else {
        return Flow::Continue;
    };
    let may_block = parsed.block.is_some() && !session.executing_transaction;
    let keys = parsed.keys;
    let count = parsed.count;
    let attempt = with_db(session, out, |db, now| {
        let last = ops::last_ids(db, &keys, now)?;
        let from: Vec<ReadFrom> = starts
            .iter()
            .zip(&last)
            .map(|(start, last)| match start {
                XReadStart::Dollar => ReadFrom::After(*last),
                XReadStart::Last => ReadFrom::Last,
                XReadStart::After(id) => ReadFrom::After(*id),
            })
            .collect();
        let found = ops::read(db, &keys, &from, count, now)?;
        if !found.is_empty() {
            return Ok(Attempt::Found(found));
        }
        if !may_block {
            return Ok(Attempt::Nothing);
        }
        // `+` on an empty stream waits like `$`: for the next entry.
        let after = from
            .iter()
            .zip(&last)
            .map(|(from, last)| match from {
                ReadFrom::After(id) => *id,
                ReadFrom::Last => *last,
            })
            .collect();
        let (waiter, receiver) = Waiter::new(keys.clone(), BlockedOp::StreamRead { after, count });
        db.waiters_mut().block(&waiter);
        Ok(Attempt::Blocked(waiter, receiver))
    });
    match attempt {
        None => Flow::Continue,
        Some(Attempt::Found(found)) => {
            write_streams(&mut out.reply(), &found);
            Flow::Continue
        }
        Some(Attempt::Nothing) => {
            out.reply().null_array();
            Flow::Continue
        }
        Some(Attempt::Blocked(waiter, served)) => {
            block(session, waiter, served, parsed.block.flatten())
        }
    }
}

const READ_SPEC: CommandSpec = CommandSpec {
    group: "stream",
    since: "5.0.0",
    ..BASE
};

/// `XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]`
pub const XREAD: CommandSpec = CommandSpec {
    name: "xread",
    full_name: "xread",
    arity: -4,
    flags: flag::READONLY,
    summary: "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
    complexity: "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data.",
    acl_categories: &["@read", "@stream", "@slow", "@blocking"],
    handler: Some(xread),
    ..READ_SPEC
};

fn xreadgroup(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(parsed) = or_reply(out, parse_read_args(args, true)) else {
        return Flow::Continue;
    };
    let Some((group, consumer)) = parsed.group.clone() else {
        return Flow::Continue;
    };
    let starts: Result<Vec<GroupFrom>, String> = parsed
        .ids
        .iter()
        .map(|arg| parse_group_start(arg))
        .collect();
    let Some(starts) = or_reply(out, starts) else {
        return Flow::Continue;
    };
    // Only a read of new entries on every key can block: history reads always answer.
    let only_new = starts.iter().all(|from| *from == GroupFrom::New);
    let may_block = parsed.block.is_some() && only_new && !session.executing_transaction;
    let keys = parsed.keys;
    let (count, noack) = (parsed.count, parsed.noack);
    let mut records = Vec::new();
    let attempt = with_db(session, out, |db, now| {
        let found = consume::read_group(db, &keys, &starts, &group, &consumer, count, noack, now)?;
        // Logged as what it did to the group (see herald_store::stream::propagate).
        for key in &keys {
            let ids: Vec<_> = found
                .iter()
                .filter(|read| read.key == *key)
                .flat_map(|read| read.entries.iter().map(|(id, _)| *id))
                .collect();
            if let Some(stream) = ops::stream(db, key, now)? {
                records.extend(propagate::group_records(
                    stream,
                    key,
                    &group,
                    Some(&consumer),
                    &ids,
                ));
            }
        }
        if !found.is_empty() {
            return Ok(Attempt::Found(found));
        }
        if !may_block {
            return Ok(Attempt::Nothing);
        }
        let op = BlockedOp::GroupRead {
            group: group.clone(),
            consumer: consumer.clone(),
            count,
            noack,
        };
        let (waiter, receiver) = Waiter::new(keys.clone(), op);
        db.waiters_mut().block(&waiter);
        Ok(Attempt::Blocked(waiter, receiver))
    });
    session.propagate_as(records);
    match attempt {
        None => Flow::Continue,
        Some(Attempt::Found(found)) => {
            write_group_reads(&mut out.reply(), &found);
            Flow::Continue
        }
        Some(Attempt::Nothing) => {
            out.reply().null_array();
            Flow::Continue
        }
        Some(Attempt::Blocked(waiter, served)) => {
            block(session, waiter, served, parsed.block.flatten())
        }
    }
}

/// `XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]`
pub const XREADGROUP: CommandSpec = CommandSpec {
    name: "xreadgroup",
    full_name: "xreadgroup",
    arity: -7,
    flags: flag::WRITE,
    summary: "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
    complexity: "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
    acl_categories: &["@write", "@stream", "@slow", "@blocking"],
    handler: Some(xreadgroup),
    ..READ_SPEC
};

/// Replies for a served stream waiter (called from the blocking reply writer).
pub fn write_served_streams(reply: &mut herald_proto::ReplyWriter<'_>, served: &Served) {
    match served {
        Served::Streams(found) => write_streams(reply, found),
        Served::Group(found) => write_group_reads(reply, found),
        Served::Failed(err) => reply.error(&err.to_string()),
        Served::Popped { .. } | Served::Moved(_) => reply.null_array(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn option_errors_match_redis() {
        let err = |words: &[&str], group| parse_read_args(&args(words), group).err();
        assert_eq!(
            err(&["xread", "streams", "a", "b", "0"], false).as_deref(),
            Some("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.")
        );
        assert_eq!(
            err(&["xread", "block", "-1", "streams", "a", "0"], false).as_deref(),
            Some("ERR timeout is negative")
        );
        assert_eq!(
            err(&["xread", "noack", "streams", "a", "0"], false).as_deref(),
            Some("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
        );
        assert_eq!(
            err(&["xreadgroup", "streams", "a", ">"], true).as_deref(),
            Some("ERR Missing GROUP option for XREADGROUP")
        );
        assert_eq!(
            err(&["xread", "count", "1"], false).as_deref(),
            Some(SYNTAX_ERROR)
        );
        let ok = parse_read_args(
            &args(&[
                "xread", "COUNT", "0", "BLOCK", "0", "STREAMS", "a", "b", "1", "$",
            ]),
            false,
        )
        .unwrap();
        assert_eq!((ok.count, ok.block), (None, Some(None)));
        assert_eq!(ok.keys.len(), 2);
        assert!(matches!(parse_xread_start(b"$"), Ok(XReadStart::Dollar)));
        assert!(parse_group_start(b"$").is_err());
    }
}
