//! Hash commands: HSET/HMSET/HSETNX, HGET/HMGET/HGETALL, HDEL, HEXISTS, HLEN, HKEYS,
//! HVALS, HSTRLEN, HINCRBY/HINCRBYFLOAT, HRANDFIELD and HSCAN.
//!
//! Arguments are validated in Redis's order (numeric arguments before the key's type,
//! except where Redis looks the key up first, as HSCAN does), so error replies match.

use bytes::Bytes;
use herald_engine::Glob;
use herald_store::hashes::{self, SCAN_DEFAULT_COUNT};
use herald_store::strings::{parse_float, parse_integer};

use super::{flag, with_db, wrong_arity, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR};
use crate::session::{Flow, Output, Session};

const READ: CommandSpec = CommandSpec {
    group: "hash",
    since: "2.0.0",
    flags: flag::READONLY | flag::FAST,
    acl_categories: &["@read", "@hash", "@fast"],
    ..BASE
};

const READ_SLOW: CommandSpec = CommandSpec {
    flags: flag::READONLY,
    acl_categories: &["@read", "@hash", "@slow"],
    complexity: "O(N) where N is the size of the hash.",
    ..READ
};

const WRITE: CommandSpec = CommandSpec {
    group: "hash",
    since: "2.0.0",
    flags: flag::WRITE | flag::FAST,
    acl_categories: &["@write", "@hash", "@fast"],
    ..BASE
};

/// `ERR value is NaN or Infinity`: HINCRBYFLOAT's text for an infinite increment.
const NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";

fn hset(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], legacy: bool) -> Flow {
    if !args.len().is_multiple_of(2) {
        out.error(&wrong_arity(if legacy { "hmset" } else { "hset" }));
        return Flow::Continue;
    }
    if let Some(added) = with_db(session, out, |db, now| {
        hashes::set(db, &args[1], &args[2..], now)
    }) {
        if legacy {
            out.ok();
        } else {
            out.reply().integer(added as i64);
        }
    }
    Flow::Continue
}

/// `HSET key field value [field value ...]`
pub const HSET: CommandSpec = CommandSpec {
    name: "hset",
    full_name: "hset",
    arity: -4,
    summary: "Creates or modifies the value of a field in a hash.",
    complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
    handler: Some(|session, out, args| hset(session, out, args, false)),
    ..WRITE
};

/// `HMSET key field value [field value ...]` (deprecated alias of HSET replying OK)
pub const HMSET: CommandSpec = CommandSpec {
    name: "hmset",
    full_name: "hmset",
    summary: "Sets the values of multiple fields.",
    handler: Some(|session, out, args| hset(session, out, args, true)),
    ..HSET
};

/// `HSETNX key field value`
pub const HSETNX: CommandSpec = CommandSpec {
    name: "hsetnx",
    full_name: "hsetnx",
    arity: 4,
    summary: "Sets the value of a field in a hash only when the field doesn't exist.",
    handler: Some(|session, out, args| {
        if let Some(created) = with_db(session, out, |db, now| {
            hashes::set_nx(db, &args[1], &args[2], &args[3], now)
        }) {
            out.reply().integer(i64::from(created));
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `HGET key field`
pub const HGET: CommandSpec = CommandSpec {
    name: "hget",
    full_name: "hget",
    arity: 3,
    summary: "Returns the value of a field in a hash.",
    handler: Some(|session, out, args| {
        if let Some(value) = with_db(session, out, |db, now| {
            hashes::get(db, &args[1], &args[2], now)
        }) {
            out.reply().optional_bulk(value.as_deref());
        }
        Flow::Continue
    }),
    ..READ
};

/// `HMGET key field [field ...]`
pub const HMGET: CommandSpec = CommandSpec {
    name: "hmget",
    full_name: "hmget",
    arity: -3,
    summary: "Returns the values of all fields in a hash.",
    complexity: "O(N) where N is the number of fields being requested.",
    handler: Some(|session, out, args| {
        if let Some(values) = with_db(session, out, |db, now| {
            hashes::get_many(db, &args[1], &args[2..], now)
        }) {
            let mut reply = out.reply();
            reply.array(values.len());
            for value in &values {
                reply.optional_bulk(value.as_deref());
            }
        }
        Flow::Continue
    }),
    ..READ
};

/// `HGETALL key`
pub const HGETALL: CommandSpec = CommandSpec {
    name: "hgetall",
    full_name: "hgetall",
    arity: 2,
    summary: "Returns all fields and values in a hash.",
    handler: Some(|session, out, args| {
        if let Some(entries) = with_db(session, out, |db, now| hashes::get_all(db, &args[1], now)) {
            let mut reply = out.reply();
            reply.map(entries.len());
            for (field, value) in &entries {
                reply.bulk(field);
                reply.bulk(value);
            }
        }
        Flow::Continue
    }),
    ..READ_SLOW
};

fn reply_list(out: &mut Output<'_>, items: Option<Vec<Bytes>>) -> Flow {
    if let Some(items) = items {
        let mut reply = out.reply();
        reply.array(items.len());
        for item in &items {
            reply.bulk(item);
        }
    }
    Flow::Continue
}

/// `HKEYS key`
pub const HKEYS: CommandSpec = CommandSpec {
    name: "hkeys",
    full_name: "hkeys",
    arity: 2,
    summary: "Returns all fields in a hash.",
    handler: Some(|session, out, args| {
        let keys = with_db(session, out, |db, now| hashes::keys(db, &args[1], now));
        reply_list(out, keys)
    }),
    ..READ_SLOW
};

/// `HVALS key`
pub const HVALS: CommandSpec = CommandSpec {
    name: "hvals",
    full_name: "hvals",
    arity: 2,
    summary: "Returns all values in a hash.",
    handler: Some(|session, out, args| {
        let values = with_db(session, out, |db, now| hashes::values(db, &args[1], now));
        reply_list(out, values)
    }),
    ..READ_SLOW
};

/// `HDEL key field [field ...]`
pub const HDEL: CommandSpec = CommandSpec {
    name: "hdel",
    full_name: "hdel",
    arity: -3,
    summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
    complexity: "O(N) where N is the number of fields to be removed.",
    handler: Some(|session, out, args| {
        if let Some(removed) = with_db(session, out, |db, now| {
            hashes::del(db, &args[1], &args[2..], now)
        }) {
            out.reply().integer(removed as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `HEXISTS key field`
pub const HEXISTS: CommandSpec = CommandSpec {
    name: "hexists",
    full_name: "hexists",
    arity: 3,
    summary: "Determines whether a field exists in a hash.",
    handler: Some(|session, out, args| {
        if let Some(found) = with_db(session, out, |db, now| {
            hashes::exists(db, &args[1], &args[2], now)
        }) {
            out.reply().integer(i64::from(found));
        }
        Flow::Continue
    }),
    ..READ
};

/// `HLEN key`
pub const HLEN: CommandSpec = CommandSpec {
    name: "hlen",
    full_name: "hlen",
    arity: 2,
    summary: "Returns the number of fields in a hash.",
    handler: Some(|session, out, args| {
        if let Some(len) = with_db(session, out, |db, now| hashes::len(db, &args[1], now)) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..READ
};

/// `HSTRLEN key field`
pub const HSTRLEN: CommandSpec = CommandSpec {
    name: "hstrlen",
    full_name: "hstrlen",
    arity: 3,
    since: "3.2.0",
    summary: "Returns the length of the value of a field.",
    handler: Some(|session, out, args| {
        if let Some(len) = with_db(session, out, |db, now| {
            hashes::strlen(db, &args[1], &args[2], now)
        }) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..READ
};

/// `HINCRBY key field increment`
pub const HINCRBY: CommandSpec = CommandSpec {
    name: "hincrby",
    full_name: "hincrby",
    arity: 4,
    summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
    handler: Some(|session, out, args| {
        // Redis parses the increment (string2ll rules) before looking at the key.
        let Some(delta) = parse_integer(&args[3]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if let Some(value) = with_db(session, out, |db, now| {
            hashes::incr_by(db, &args[1], &args[2], delta, now)
        }) {
            out.reply().integer(value);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `HINCRBYFLOAT key field increment`
pub const HINCRBYFLOAT: CommandSpec = CommandSpec {
    name: "hincrbyfloat",
    full_name: "hincrbyfloat",
    arity: 4,
    since: "2.6.0",
    summary: "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
    handler: Some(|session, out, args| {
        let Some(delta) = parse_float(&args[3]) else {
            out.error("ERR value is not a valid float");
            return Flow::Continue;
        };
        if !delta.is_finite() {
            out.error(NAN_OR_INFINITY);
            return Flow::Continue;
        }
        if let Some(value) = with_db(session, out, |db, now| {
            hashes::incr_by_float(db, &args[1], &args[2], delta, now)
        }) {
            session.propagate_as(vec![super::record(&[b"HSET", &args[1], &args[2], &value])]);
            out.reply().bulk(&value);
        }
        Flow::Continue
    }),
    ..WRITE
};

fn hrandfield(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(count_arg) = args.get(2) else {
        if let Some(field) = with_db(session, out, |db, now| {
            hashes::random_field(db, &args[1], now)
        }) {
            out.reply().optional_bulk(field.as_deref());
        }
        return Flow::Continue;
    };
    let Some(count) = parse_integer(count_arg) else {
        out.error(NOT_AN_INTEGER);
        return Flow::Continue;
    };
    if count == i64::MIN {
        out.error(&format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        ));
        return Flow::Continue;
    }
    let with_values = match &args[3..] {
        [] => false,
        [option] if option.eq_ignore_ascii_case(b"withvalues") => true,
        _ => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
    };
    // Redis bounds the count so that the RESP2 reply length (2 * count) cannot overflow.
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        out.error("ERR value is out of range");
        return Flow::Continue;
    }
    let Some(entries) = with_db(session, out, |db, now| {
        hashes::random_fields(db, &args[1], count, now)
    }) else {
        return Flow::Continue;
    };
    let mut reply = out.reply();
    match (with_values, reply.protocol()) {
        (false, _) => {
            reply.array(entries.len());
            for (field, _) in &entries {
                reply.bulk(field);
            }
        }
        // RESP2: a flat field, value, field, value... array.
        (true, herald_proto::Protocol::Resp2) => {
            reply.array(entries.len() * 2);
            for (field, value) in &entries {
                reply.bulk(field);
                reply.bulk(value);
            }
        }
        // RESP3: an array of [field, value] pairs (not a map: negative counts repeat).
        (true, herald_proto::Protocol::Resp3) => {
            reply.array(entries.len());
            for (field, value) in &entries {
                reply.array(2);
                reply.bulk(field);
                reply.bulk(value);
            }
        }
    }
    Flow::Continue
}

/// `HRANDFIELD key [count [WITHVALUES]]`
pub const HRANDFIELD: CommandSpec = CommandSpec {
    name: "hrandfield",
    full_name: "hrandfield",
    arity: -2,
    since: "6.2.0",
    flags: flag::READONLY,
    acl_categories: &["@read", "@hash", "@slow"],
    summary: "Returns one or more random fields from a hash.",
    complexity: "O(N) where N is the number of fields returned",
    handler: Some(hrandfield),
    ..READ
};

/// HSCAN's options after the cursor; `Err` carries the error reply.
fn scan_options(args: &[Bytes]) -> Result<(Option<Glob>, usize, bool), &'static str> {
    let mut pattern = None;
    let mut count = SCAN_DEFAULT_COUNT;
    let mut no_values = false;
    let mut i = 0;
    while i < args.len() {
        let option = &args[i];
        match args.get(i + 1) {
            Some(value) if option.eq_ignore_ascii_case(b"count") => {
                let n = parse_integer(value).ok_or(NOT_AN_INTEGER)?;
                if n < 1 {
                    return Err(SYNTAX_ERROR);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 2;
            }
            Some(value) if option.eq_ignore_ascii_case(b"match") => {
                // `*` matches everything: skip matching, as Redis does.
                pattern = (&value[..] != b"*").then(|| Glob::new(value));
                i += 2;
            }
            _ if option.eq_ignore_ascii_case(b"novalues") => {
                no_values = true;
                i += 1;
            }
            _ => return Err(SYNTAX_ERROR),
        }
    }
    Ok((pattern, count, no_values))
}

fn hscan(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some(cursor) = super::parse_cursor(&args[2]) else {
        out.error("ERR invalid cursor");
        return Flow::Continue;
    };
    // Redis checks the key (missing: empty scan; wrong type: error) before the options.
    let options = scan_options(&args[3..]);
    let Some(page) = with_db(session, out, |db, now| {
        if !db.contains(&args[1], now) {
            return Ok(Ok(hashes::ScanPage::default()));
        }
        let (pattern, count, _) = match &options {
            Ok(options) => options,
            // Surface WRONGTYPE before a bad option, as Redis does.
            Err(error) => return hashes::len(db, &args[1], now).map(|_| Err(*error)),
        };
        hashes::scan(db, &args[1], cursor, *count, pattern.as_ref(), now).map(Ok)
    }) else {
        return Flow::Continue;
    };
    let page = match page {
        Ok(page) => page,
        Err(error) => {
            out.error(error);
            return Flow::Continue;
        }
    };
    let no_values = options.is_ok_and(|(_, _, no_values)| no_values);
    let mut reply = out.reply();
    reply.array(2);
    let mut digits = itoa::Buffer::new();
    reply.bulk(digits.format(page.cursor).as_bytes());
    reply.array(page.entries.len() * if no_values { 1 } else { 2 });
    for (field, value) in &page.entries {
        reply.bulk(field);
        if !no_values {
            reply.bulk(value);
        }
    }
    Flow::Continue
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]`
pub const HSCAN: CommandSpec = CommandSpec {
    name: "hscan",
    full_name: "hscan",
    arity: -3,
    since: "2.8.0",
    flags: flag::READONLY,
    acl_categories: &["@read", "@hash", "@slow"],
    summary: "Iterates over fields and values of a hash.",
    complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    handler: Some(hscan),
    ..READ
};

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(super::super::parse_cursor(b"0"), Some(0));
        assert_eq!(super::super::parse_cursor(b"42"), Some(42));
        assert_eq!(super::super::parse_cursor(b""), Some(0));
        assert_eq!(super::super::parse_cursor(b"+7"), Some(7));
        assert_eq!(super::super::parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(
            super::super::parse_cursor(b"18446744073709551615"),
            Some(u64::MAX)
        );
        assert_eq!(super::super::parse_cursor(b"18446744073709551616"), None);
        assert_eq!(super::super::parse_cursor(b" 1"), None);
        assert_eq!(super::super::parse_cursor(b"1x"), None);
        assert_eq!(super::super::parse_cursor(b"-"), None);
    }

    #[test]
    fn scan_options_like_redis() {
        let ok = scan_options(&words(&["COUNT", "5", "match", "a*", "NoValues"])).unwrap();
        assert_eq!(ok.1, 5);
        assert!(ok.0.is_some() && ok.2);
        assert!(scan_options(&words(&["match", "*"])).unwrap().0.is_none());
        assert_eq!(
            scan_options(&words(&["count", "0"])).err(),
            Some(SYNTAX_ERROR)
        );
        assert_eq!(
            scan_options(&words(&["count", "x"])).err(),
            Some(NOT_AN_INTEGER)
        );
        assert_eq!(scan_options(&words(&["count"])).err(), Some(SYNTAX_ERROR));
        assert_eq!(scan_options(&words(&["match"])).err(), Some(SYNTAX_ERROR));
        assert_eq!(scan_options(&words(&["bogus"])).err(), Some(SYNTAX_ERROR));
    }
}
