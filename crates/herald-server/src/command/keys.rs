//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS, RENAME(NX), the EXPIRE family,
//! TTL/PTTL/EXPIRETIME/PEXPIRETIME, PERSIST, RANDOMKEY, DBSIZE, FLUSHDB, FLUSHALL,
//! SWAPDB, MOVE, SCAN, COPY.

use bytes::Bytes;
use herald_engine::Glob;
use herald_store::db::Expiry;
use herald_store::{events, StoreError};

use super::{
    flag, parse_i64, with_db, with_keyspace, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR,
};
use crate::session::{Flow, Output, Session};

const KEYSPACE: CommandSpec = CommandSpec {
    group: "generic",
    flags: flag::READONLY | flag::FAST,
    acl_categories: &["@keyspace", "@read", "@fast"],
    ..BASE
};

const KEYSPACE_WRITE: CommandSpec = CommandSpec {
    flags: flag::WRITE | flag::FAST,
    acl_categories: &["@keyspace", "@write", "@fast"],
    ..KEYSPACE
};

fn delete(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let removed = with_db(session, out, |db, now| {
        let mut removed = 0;
        for key in &args[1..] {
            if db.remove(key, now).is_some() {
                db.notify(events::GENERIC, "del", key);
                removed += 1;
            }
        }
        Ok(removed)
    });
    if let Some(removed) = removed {
        out.reply().integer(removed as i64);
    }
    Flow::Continue
}

/// `DEL key [key ...]`
pub const DEL: CommandSpec = CommandSpec {
    name: "del",
    full_name: "del",
    arity: -2,
    flags: flag::WRITE,
    summary: "Deletes one or more keys.",
    complexity: "O(N) where N is the number of keys that will be removed.",
    acl_categories: &["@keyspace", "@write", "@slow"],
    handler: Some(delete),
    ..KEYSPACE_WRITE
};

/// `UNLINK key [key ...]` (Herald frees values at once; there is no background thread).
pub const UNLINK: CommandSpec = CommandSpec {
    name: "unlink",
    full_name: "unlink",
    since: "4.0.0",
    flags: flag::WRITE | flag::FAST,
    summary: "Asynchronously deletes one or more keys.",
    acl_categories: &["@keyspace", "@write", "@fast"],
    ..DEL
};

/// `EXISTS key [key ...]`
pub const EXISTS: CommandSpec = CommandSpec {
    name: "exists",
    full_name: "exists",
    arity: -2,
    summary: "Determines whether one or more keys exist.",
    complexity: "O(N) where N is the number of keys to check.",
    handler: Some(|session, out, args| {
        let count = with_db(session, out, |db, now| {
            Ok(args[1..].iter().filter(|key| db.contains(key, now)).count())
        });
        if let Some(count) = count {
            out.reply().integer(count as i64);
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

/// `TYPE key`
pub const TYPE: CommandSpec = CommandSpec {
    name: "type",
    full_name: "type",
    arity: 2,
    summary: "Determines the type of value stored at a key.",
    handler: Some(|session, out, args| {
        let name = with_db(session, out, |db, now| {
            Ok(db
                .get(&args[1], now)
                .map_or("none", |value| value.type_name()))
        });
        if let Some(name) = name {
            out.reply().simple(name);
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

/// `KEYS pattern`
pub const KEYS: CommandSpec = CommandSpec {
    name: "keys",
    full_name: "keys",
    arity: 2,
    flags: flag::READONLY,
    summary: "Returns all key names that match a pattern.",
    complexity: "O(N) with N being the number of keys in the database",
    acl_categories: &["@keyspace", "@read", "@slow", "@dangerous"],
    handler: Some(|session, out, args| {
        let glob = Glob::new(&args[1]);
        if let Some(keys) = with_db(session, out, |db, now| Ok(db.keys(&glob, now))) {
            let mut reply = out.reply();
            reply.array(keys.len());
            for key in &keys {
                reply.bulk(key);
            }
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

fn rename(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], only_if_new: bool) -> Flow {
    let (from, to) = (&args[1], &args[2]);
    let renamed = with_db(session, out, |db, now| {
        let expiry = db.expiry(from, now);
        if expiry == Expiry::Missing {
            return Err(StoreError::NoSuchKey);
        }
        if from == to {
            return Ok(!only_if_new);
        }
        if only_if_new && db.contains(to, now) {
            return Ok(false);
        }
        let Some(value) = db.remove(from, now) else {
            return Err(StoreError::NoSuchKey);
        };
        let at = match expiry {
            Expiry::At(at) => Some(at),
            Expiry::Missing | Expiry::Persistent => None,
        };
        db.notify(events::GENERIC, "rename_from", from);
        db.remove(to, now);
        db.set(to, value, at);
        db.notify(events::GENERIC, "rename_to", to);
        Ok(true)
    });
    match (renamed, only_if_new) {
        (None, _) => {}
        (Some(_), false) => out.ok(),
        (Some(renamed), true) => out.reply().integer(i64::from(renamed)),
    }
    Flow::Continue
}

/// `RENAME key newkey`
pub const RENAME: CommandSpec = CommandSpec {
    name: "rename",
    full_name: "rename",
    arity: 3,
    flags: flag::WRITE,
    summary: "Renames a key and overwrites the destination.",
    acl_categories: &["@keyspace", "@write", "@slow"],
    handler: Some(|session, out, args| rename(session, out, args, false)),
    ..KEYSPACE_WRITE
};

/// `RENAMENX key newkey`
pub const RENAMENX: CommandSpec = CommandSpec {
    name: "renamenx",
    full_name: "renamenx",
    flags: flag::WRITE | flag::FAST,
    summary: "Renames a key only when the target key name doesn't exist.",
    acl_categories: &["@keyspace", "@write", "@fast"],
    handler: Some(|session, out, args| rename(session, out, args, true)),
    ..RENAME
};

/// EXPIRE's NX / XX / GT / LT condition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpireCondition {
    Always,
    NoExpiry,
    HasExpiry,
    Greater,
    Less,
}

fn expire(
    session: &mut Session,
    out: &mut Output<'_>,
    args: &[Bytes],
    unit_ms: u64,
    absolute: bool,
) -> Flow {
    let command = session.current_command();
    let mut condition = ExpireCondition::Always;
    for option in &args[3..] {
        let next = match &option.to_ascii_uppercase()[..] {
            b"NX" => ExpireCondition::NoExpiry,
            b"XX" => ExpireCondition::HasExpiry,
            b"GT" => ExpireCondition::Greater,
            b"LT" => ExpireCondition::Less,
            _ => {
                out.error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(option)
                ));
                return Flow::Continue;
            }
        };
        let clash = match (condition, next) {
            (ExpireCondition::Always, _) => None,
            (ExpireCondition::Greater, ExpireCondition::Less)
            | (ExpireCondition::Less, ExpireCondition::Greater) => {
                Some("ERR GT and LT options at the same time are not compatible")
            }
            (a, b) if a == ExpireCondition::NoExpiry || b == ExpireCondition::NoExpiry => {
                Some("ERR NX and XX, GT or LT options at the same time are not compatible")
            }
            _ => None,
        };
        if let Some(error) = clash {
            out.error(error);
            return Flow::Continue;
        }
        condition = next;
    }
    let Some(n) = parse_i64(&args[2]) else {
        out.error(NOT_AN_INTEGER);
        return Flow::Continue;
    };
    // A zero or negative time is valid here (it deletes the key); only overflow is not.
    let now = session.shared.now_ms();
    let at = n.checked_mul(unit_ms as i64).and_then(|ms| {
        if absolute {
            Some(ms)
        } else {
            ms.checked_add(now as i64)
        }
    });
    let Some(at) = at else {
        out.error(&format!("ERR invalid expire time in '{command}' command"));
        return Flow::Continue;
    };
    let at = at.max(0) as u64;
    let mut now_seen = 0;
    let applied = with_db(session, out, |db, now| {
        now_seen = now;
        let current = match db.expiry(&args[1], now) {
            Expiry::Missing => return Ok(false),
            Expiry::Persistent => None,
            Expiry::At(at) => Some(at),
        };
        let allowed = match (condition, current) {
            (ExpireCondition::Always, _) => true,
            (ExpireCondition::NoExpiry, current) => current.is_none(),
            (ExpireCondition::HasExpiry, current) => current.is_some(),
            // A key without expiry counts as an infinite TTL.
            (ExpireCondition::Greater, current) => current.is_some_and(|current| at > current),
            (ExpireCondition::Less, current) => current.is_none_or(|current| at < current),
        };
        if !allowed || !db.set_expiry(&args[1], Some(at), now) {
            return Ok(false);
        }
        let event = if at <= now { "del" } else { "expire" };
        db.notify(events::GENERIC, event, &args[1]);
        Ok(true)
    });
    if let Some(applied) = applied {
        session.propagate_as(if applied {
            vec![super::expiry_record(&args[1], at, now_seen)]
        } else {
            Vec::new()
        });
        out.reply().integer(i64::from(applied));
    }
    Flow::Continue
}

const EXPIRE_BASE: CommandSpec = CommandSpec {
    arity: -3,
    flags: flag::WRITE | flag::FAST,
    acl_categories: &["@keyspace", "@write", "@fast"],
    ..KEYSPACE
};

/// `EXPIRE key seconds [NX | XX | GT | LT]`
pub const EXPIRE: CommandSpec = CommandSpec {
    name: "expire",
    full_name: "expire",
    summary: "Sets the expiration time of a key in seconds.",
    handler: Some(|session, out, args| expire(session, out, args, 1000, false)),
    ..EXPIRE_BASE
};

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`
pub const PEXPIRE: CommandSpec = CommandSpec {
    name: "pexpire",
    full_name: "pexpire",
    since: "2.6.0",
    summary: "Sets the expiration time of a key in milliseconds.",
    handler: Some(|session, out, args| expire(session, out, args, 1, false)),
    ..EXPIRE_BASE
};

/// `EXPIREAT key unix-time-seconds [NX | XX | GT | LT]`
pub const EXPIREAT: CommandSpec = CommandSpec {
    name: "expireat",
    full_name: "expireat",
    since: "1.2.0",
    summary: "Sets the expiration time of a key to a Unix timestamp.",
    handler: Some(|session, out, args| expire(session, out, args, 1000, true)),
    ..EXPIRE_BASE
};

/// `PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]`
pub const PEXPIREAT: CommandSpec = CommandSpec {
    name: "pexpireat",
    full_name: "pexpireat",
    since: "2.6.0",
    summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    handler: Some(|session, out, args| expire(session, out, args, 1, true)),
    ..EXPIRE_BASE
};

/// How a TTL-family command reports the expiry.
#[derive(Clone, Copy)]
enum TtlReport {
    RemainingSeconds,
    RemainingMillis,
    AbsoluteSeconds,
    AbsoluteMillis,
}

fn ttl(session: &mut Session, out: &mut Output<'_>, key: &[u8], report: TtlReport) -> Flow {
    let reply = with_db(session, out, |db, now| {
        Ok(match db.expiry(key, now) {
            Expiry::Missing => -2,
            Expiry::Persistent => -1,
            Expiry::At(at) => {
                let remaining = at.saturating_sub(now) as i64;
                match report {
                    // Redis rounds to the nearest second.
                    TtlReport::RemainingSeconds => (remaining + 500) / 1000,
                    TtlReport::RemainingMillis => remaining,
                    TtlReport::AbsoluteSeconds => (at / 1000) as i64,
                    TtlReport::AbsoluteMillis => at as i64,
                }
            }
        })
    });
    if let Some(value) = reply {
        out.reply().integer(value);
    }
    Flow::Continue
}

/// `TTL key`
pub const TTL: CommandSpec = CommandSpec {
    name: "ttl",
    full_name: "ttl",
    arity: 2,
    summary: "Returns the expiration time in seconds of a key.",
    handler: Some(|session, out, args| ttl(session, out, &args[1], TtlReport::RemainingSeconds)),
    ..KEYSPACE
};

/// `PTTL key`
pub const PTTL: CommandSpec = CommandSpec {
    name: "pttl",
    full_name: "pttl",
    since: "2.6.0",
    summary: "Returns the expiration time in milliseconds of a key.",
    handler: Some(|session, out, args| ttl(session, out, &args[1], TtlReport::RemainingMillis)),
    ..TTL
};

/// `EXPIRETIME key`
pub const EXPIRETIME: CommandSpec = CommandSpec {
    name: "expiretime",
    full_name: "expiretime",
    since: "7.0.0",
    summary: "Returns the expiration time of a key as a Unix timestamp.",
    handler: Some(|session, out, args| ttl(session, out, &args[1], TtlReport::AbsoluteSeconds)),
    ..TTL
};

/// `PEXPIRETIME key`
pub const PEXPIRETIME: CommandSpec = CommandSpec {
    name: "pexpiretime",
    full_name: "pexpiretime",
    since: "7.0.0",
    summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    handler: Some(|session, out, args| ttl(session, out, &args[1], TtlReport::AbsoluteMillis)),
    ..TTL
};

/// `PERSIST key`
pub const PERSIST: CommandSpec = CommandSpec {
    name: "persist",
    full_name: "persist",
    arity: 2,
    since: "2.2.0",
    summary: "Removes the expiration time of a key.",
    handler: Some(|session, out, args| {
        let removed = with_db(session, out, |db, now| {
            Ok(matches!(db.expiry(&args[1], now), Expiry::At(_))
                && db.set_expiry(&args[1], None, now))
        });
        if let Some(removed) = removed {
            out.reply().integer(i64::from(removed));
        }
        Flow::Continue
    }),
    ..KEYSPACE_WRITE
};

/// `RANDOMKEY`
pub const RANDOMKEY: CommandSpec = CommandSpec {
    name: "randomkey",
    full_name: "randomkey",
    arity: 1,
    flags: flag::READONLY,
    summary: "Returns a random key name from the database.",
    acl_categories: &["@keyspace", "@read", "@slow"],
    handler: Some(|session, out, _| {
        if let Some(key) = with_db(session, out, |db, now| Ok(db.random_key(now))) {
            out.reply().optional_bulk(key.as_deref());
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

/// `DBSIZE`
pub const DBSIZE: CommandSpec = CommandSpec {
    name: "dbsize",
    full_name: "dbsize",
    arity: 1,
    group: "server",
    summary: "Returns the number of keys in the database.",
    handler: Some(|session, out, _| {
        if let Some(len) = with_db(session, out, |db, _| Ok(db.len())) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

fn flush(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], all: bool) -> Flow {
    let mode = args.get(1).map(|arg| arg.to_ascii_lowercase());
    match &mode {
        Some(mode) if args.len() > 2 || (mode != b"sync" && mode != b"async") => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
        _ => {}
    }
    let db = session.db;
    let flushed = with_keyspace(session, out, |keyspace, _| {
        if all {
            keyspace.flush_all();
        } else {
            keyspace.db(db)?.clear();
        }
        Ok(())
    });
    if flushed.is_some() {
        // As Redis after a synchronous flush: the allocator would otherwise keep the
        // freed pages until its decay returns them, or until traffic reuses them.
        if mode.as_deref() != Some(b"async".as_slice()) {
            if let Err(err) = crate::memory::purge() {
                tracing::warn!(%err, "cannot purge the allocator's dirty pages after a flush");
            }
        }
        out.ok();
    }
    Flow::Continue
}

/// `FLUSHDB [ASYNC | SYNC]`
pub const FLUSHDB: CommandSpec = CommandSpec {
    name: "flushdb",
    full_name: "flushdb",
    arity: -1,
    group: "server",
    flags: flag::WRITE,
    summary: "Remove all keys from the current database.",
    complexity: "O(N) where N is the number of keys in the selected database",
    acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"],
    handler: Some(|session, out, args| flush(session, out, args, false)),
    ..KEYSPACE
};

/// `FLUSHALL [ASYNC | SYNC]`
pub const FLUSHALL: CommandSpec = CommandSpec {
    name: "flushall",
    full_name: "flushall",
    summary: "Removes all keys from all databases.",
    complexity: "O(N) where N is the total number of keys in all databases",
    handler: Some(|session, out, args| flush(session, out, args, true)),
    ..FLUSHDB
};

/// `SWAPDB index1 index2`
pub const SWAPDB: CommandSpec = CommandSpec {
    name: "swapdb",
    full_name: "swapdb",
    arity: 3,
    group: "server",
    flags: flag::WRITE | flag::FAST,
    since: "4.0.0",
    summary: "Swaps two Redis databases.",
    complexity:
        "O(N) where N is the count of clients watching or blocking on keys from both databases.",
    acl_categories: &["@keyspace", "@write", "@fast", "@dangerous"],
    handler: Some(|session, out, args| {
        let Some(first) = parse_i64(&args[1]) else {
            out.error("ERR invalid first DB index");
            return Flow::Continue;
        };
        let Some(second) = parse_i64(&args[2]) else {
            out.error("ERR invalid second DB index");
            return Flow::Continue;
        };
        let (Ok(first), Ok(second)) = (usize::try_from(first), usize::try_from(second)) else {
            out.error("ERR DB index is out of range");
            return Flow::Continue;
        };
        if with_keyspace(session, out, |keyspace, _| keyspace.swap(first, second)).is_some() {
            out.ok();
        }
        Flow::Continue
    }),
    ..KEYSPACE
};

/// `MOVE key db`
pub const MOVE: CommandSpec = CommandSpec {
    name: "move",
    full_name: "move",
    arity: 3,
    summary: "Moves a key to another database.",
    handler: Some(|session, out, args| {
        let Some(target) = parse_i64(&args[2]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        let Ok(target) = usize::try_from(target) else {
            out.error("ERR DB index is out of range");
            return Flow::Continue;
        };
        let from = session.db;
        let moved = with_keyspace(session, out, |keyspace, now| {
            keyspace.move_key(&args[1], from, target, now)
        });
        if let Some(moved) = moved {
            out.reply().integer(i64::from(moved));
        }
        Flow::Continue
    }),
    ..KEYSPACE_WRITE
};

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
pub const SCAN: CommandSpec = CommandSpec {
    name: "scan",
    full_name: "scan",
    arity: -2,
    flags: flag::READONLY,
    since: "2.8.0",
    summary: "Iterates over the key names in the database.",
    complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    acl_categories: &["@keyspace", "@read", "@slow"],
    handler: Some(scan),
    ..KEYSPACE
};

/// Default COUNT of SCAN-family commands (Redis: 10).
pub const SCAN_DEFAULT_COUNT: usize = 10;

fn scan(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        out.error("ERR invalid cursor");
        return Flow::Continue;
    };
    let mut pattern = None;
    let mut count = SCAN_DEFAULT_COUNT;
    let mut type_name = None;
    for pair in args[2..].chunks(2) {
        let [option, value] = pair else {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        };
        match &option.to_ascii_uppercase()[..] {
            b"MATCH" => pattern = Some(Glob::new(value)),
            b"COUNT" => match parse_i64(value) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => {
                    out.error(SYNTAX_ERROR);
                    return Flow::Continue;
                }
                None => {
                    out.error(NOT_AN_INTEGER);
                    return Flow::Continue;
                }
            },
            b"TYPE" => type_name = Some(String::from_utf8_lossy(value).to_ascii_lowercase()),
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        }
    }
    let result = with_db(session, out, |db, now| {
        Ok(db.scan(cursor, count, pattern.as_ref(), type_name.as_deref(), now))
    });
    if let Some((next, keys)) = result {
        let mut reply = out.reply();
        reply.array(2);
        reply.bulk(next.to_string().as_bytes());
        reply.array(keys.len());
        for key in &keys {
            reply.bulk(key);
        }
    }
    Flow::Continue
}

/// `COPY source destination [DB destination-db] [REPLACE]`
pub const COPY: CommandSpec = CommandSpec {
    name: "copy",
    full_name: "copy",
    arity: -3,
    flags: flag::WRITE,
    since: "6.2.0",
    summary: "Copies the value of a key to a new key.",
    complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
    acl_categories: &["@keyspace", "@write", "@slow"],
    handler: Some(|session, out, args| {
        let mut target_db = session.db;
        let mut replace = false;
        let mut options = args[3..].iter();
        while let Some(option) = options.next() {
            match &option.to_ascii_uppercase()[..] {
                b"REPLACE" => replace = true,
                b"DB" => match options.next().map(|value| parse_i64(value)) {
                    Some(Some(index)) => match usize::try_from(index) {
                        Ok(index) => target_db = index,
                        Err(_) => {
                            out.error("ERR DB index is out of range");
                            return Flow::Continue;
                        }
                    },
                    Some(None) => {
                        out.error(NOT_AN_INTEGER);
                        return Flow::Continue;
                    }
                    None => {
                        out.error(SYNTAX_ERROR);
                        return Flow::Continue;
                    }
                },
                _ => {
                    out.error(SYNTAX_ERROR);
                    return Flow::Continue;
                }
            }
        }
        let from = session.db;
        let copied = with_keyspace(session, out, |keyspace, now| {
            keyspace.copy_key(&args[1], &args[2], from, target_db, replace, now)
        });
        if let Some(copied) = copied {
            out.reply().integer(i64::from(copied));
        }
        Flow::Continue
    }),
    ..KEYSPACE_WRITE
};
