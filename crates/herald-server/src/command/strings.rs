//! String commands: GET, SET and its variants, MGET/MSET, the INCR family, APPEND,
//! STRLEN, GETRANGE/SETRANGE, GETDEL, GETEX.

use bytes::Bytes;
use herald_store::strings::{self, SetCondition, SetExpiry, SetOptions};

use super::{
    expiry_at, expiry_record, flag, parse_i64, record, with_db, CommandSpec, BASE, NOT_AN_INTEGER,
    SYNTAX_ERROR,
};
use crate::session::{Flow, Output, Session};

const READ: CommandSpec = CommandSpec {
    group: "string",
    flags: flag::READONLY | flag::FAST,
    acl_categories: &["@read", "@string", "@fast"],
    ..BASE
};

const WRITE: CommandSpec = CommandSpec {
    group: "string",
    flags: flag::WRITE | flag::FAST,
    acl_categories: &["@write", "@string", "@fast"],
    ..BASE
};

/// `GET key`
pub const GET: CommandSpec = CommandSpec {
    name: "get",
    full_name: "get",
    arity: 2,
    summary: "Returns the string value of a key.",
    handler: Some(|session, out, args| {
        if let Some(value) = with_db(session, out, |db, now| strings::get(db, &args[1], now)) {
            out.reply().optional_bulk(value.as_deref());
        }
        Flow::Continue
    }),
    ..READ
};

fn set_command(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut options = SetOptions::default();
    let mut expiry_given = false;
    let mut i = 3;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        match (&option[..], next) {
            (b"NX", _) if options.condition == SetCondition::Always => {
                options.condition = SetCondition::IfMissing
            }
            (b"XX", _) if options.condition == SetCondition::Always => {
                options.condition = SetCondition::IfExists
            }
            (b"GET", _) => options.get = true,
            (b"KEEPTTL", _) if !expiry_given => {
                expiry_given = true;
                options.expiry = SetExpiry::Keep;
            }
            (b"EX" | b"PX" | b"EXAT" | b"PXAT", Some(value)) if !expiry_given => {
                expiry_given = true;
                let unit = if option.starts_with(b"P") { 1 } else { 1000 };
                let Some(at) = expiry_at(out, value, unit, option.ends_with(b"AT"), "set") else {
                    return Flow::Continue;
                };
                options.expiry = SetExpiry::At(at);
                i += 1;
            }
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        }
        i += 1;
    }
    let value = args[2].clone();
    let mut now_seen = 0;
    let Some(outcome) = with_db(session, out, |db, now| {
        now_seen = now;
        strings::set(db, &args[1], value, options, now)
    }) else {
        return Flow::Continue;
    };
    // The key and value are the request's own buffers (cloning them copies nothing).
    let set = |tail: &[&[u8]]| {
        let mut words = vec![Bytes::from_static(b"SET"), args[1].clone(), args[2].clone()];
        words.extend(tail.iter().map(|word| Bytes::copy_from_slice(word)));
        words
    };
    match (outcome.written, options.expiry) {
        (false, _) => session.propagate_as(Vec::new()),
        (true, SetExpiry::At(at)) if at <= now_seen => {
            session.propagate_as(vec![record(&[b"DEL", &args[1]])])
        }
        (true, SetExpiry::At(at)) => session.propagate_as(vec![set(&[
            b"PXAT",
            itoa::Buffer::new().format(at).as_bytes(),
        ])]),
        (true, SetExpiry::Keep) => session.propagate_as(vec![set(&[b"KEEPTTL"])]),
        // Plain `SET key value` is logged as sent.
        (true, SetExpiry::Clear) if args.len() == 3 => {}
        (true, SetExpiry::Clear) => session.propagate_as(vec![set(&[])]),
    }
    let mut reply = out.reply();
    match (options.get, outcome.written) {
        (true, _) => reply.optional_bulk(outcome.previous.as_deref()),
        (false, true) => reply.ok(),
        (false, false) => reply.null(),
    }
    Flow::Continue
}

/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]`
pub const SET: CommandSpec = CommandSpec {
    name: "set",
    full_name: "set",
    arity: -3,
    flags: flag::WRITE,
    summary:
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    handler: Some(set_command),
    ..WRITE
};

/// `SETNX key value`
pub const SETNX: CommandSpec = CommandSpec {
    name: "setnx",
    full_name: "setnx",
    arity: 3,
    summary: "Set the string value of a key only when the key doesn't exist.",
    handler: Some(|session, out, args| {
        let options = SetOptions {
            condition: SetCondition::IfMissing,
            ..SetOptions::default()
        };
        let value = args[2].clone();
        if let Some(outcome) = with_db(session, out, |db, now| {
            strings::set(db, &args[1], value, options, now)
        }) {
            out.reply().integer(i64::from(outcome.written));
        }
        Flow::Continue
    }),
    ..WRITE
};

fn setex(
    session: &mut Session,
    out: &mut Output<'_>,
    args: &[Bytes],
    unit_ms: u64,
    command: &str,
) -> Flow {
    let Some(at) = expiry_at(out, &args[2], unit_ms, false, command) else {
        return Flow::Continue;
    };
    let options = SetOptions {
        expiry: SetExpiry::At(at),
        ..SetOptions::default()
    };
    let value = args[3].clone();
    let mut now_seen = 0;
    if with_db(session, out, |db, now| {
        now_seen = now;
        strings::set(db, &args[1], value, options, now)
    })
    .is_some()
    {
        session.propagate_as(vec![if at <= now_seen {
            record(&[b"DEL", &args[1]])
        } else {
            record(&[
                b"SET",
                &args[1],
                &args[3],
                b"PXAT",
                itoa::Buffer::new().format(at).as_bytes(),
            ])
        }]);
        out.ok();
    }
    Flow::Continue
}

/// `SETEX key seconds value`
pub const SETEX: CommandSpec = CommandSpec {
    name: "setex",
    full_name: "setex",
    arity: 4,
    flags: flag::WRITE,
    summary:
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
    handler: Some(|session, out, args| setex(session, out, args, 1000, "setex")),
    ..WRITE
};

/// `PSETEX key milliseconds value`
pub const PSETEX: CommandSpec = CommandSpec {
    name: "psetex",
    full_name: "psetex",
    summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
    handler: Some(|session, out, args| setex(session, out, args, 1, "psetex")),
    ..SETEX
};

/// `GETSET key value`
pub const GETSET: CommandSpec = CommandSpec {
    name: "getset",
    full_name: "getset",
    arity: 3,
    summary: "Returns the previous string value of a key after setting it to a new value.",
    handler: Some(|session, out, args| {
        let options = SetOptions {
            get: true,
            ..SetOptions::default()
        };
        let value = args[2].clone();
        if let Some(outcome) = with_db(session, out, |db, now| {
            strings::set(db, &args[1], value, options, now)
        }) {
            out.reply().optional_bulk(outcome.previous.as_deref());
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `GETDEL key`
pub const GETDEL: CommandSpec = CommandSpec {
    name: "getdel",
    full_name: "getdel",
    arity: 2,
    since: "6.2.0",
    summary: "Returns the string value of a key after deleting the key.",
    handler: Some(|session, out, args| {
        if let Some(value) = with_db(session, out, |db, now| strings::get_del(db, &args[1], now)) {
            out.reply().optional_bulk(value.as_deref());
        }
        Flow::Continue
    }),
    ..WRITE
};

fn getex(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let change = match &args[2..] {
        [] => None,
        [persist] if persist.eq_ignore_ascii_case(b"persist") => Some(None),
        [option, value] => {
            let option = option.to_ascii_uppercase();
            if !matches!(&option[..], b"EX" | b"PX" | b"EXAT" | b"PXAT") {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
            let unit = if option.starts_with(b"P") { 1 } else { 1000 };
            let Some(at) = expiry_at(out, value, unit, option.ends_with(b"AT"), "getex") else {
                return Flow::Continue;
            };
            Some(Some(at))
        }
        _ => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
    };
    let mut now_seen = 0;
    if let Some(value) = with_db(session, out, |db, now| {
        now_seen = now;
        strings::get_ex(db, &args[1], change, now)
    }) {
        session.propagate_as(match (&value, change) {
            (None, _) | (Some(_), None) => Vec::new(),
            (Some(_), Some(None)) => vec![record(&[b"PERSIST", &args[1]])],
            (Some(_), Some(Some(at))) => vec![expiry_record(&args[1], at, now_seen)],
        });
        out.reply().optional_bulk(value.as_deref());
    }
    Flow::Continue
}

/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]`
pub const GETEX: CommandSpec = CommandSpec {
    name: "getex",
    full_name: "getex",
    arity: -2,
    since: "6.2.0",
    summary: "Returns the string value of a key after setting its expiration time.",
    handler: Some(getex),
    ..WRITE
};

/// `MGET key [key ...]`
pub const MGET: CommandSpec = CommandSpec {
    name: "mget",
    full_name: "mget",
    arity: -2,
    summary: "Atomically returns the string values of one or more keys.",
    complexity: "O(N) where N is the number of keys to retrieve.",
    handler: Some(|session, out, args| {
        let values = with_db(session, out, |db, now| {
            Ok(args[1..]
                .iter()
                // A key of another type reads as nil, not as an error.
                .map(|key| strings::get(db, key, now).ok().flatten())
                .collect::<Vec<_>>())
        });
        if let Some(values) = values {
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

fn mset(
    session: &mut Session,
    out: &mut Output<'_>,
    args: &[Bytes],
    only_if_none_exist: bool,
) -> Flow {
    if args.len().is_multiple_of(2) {
        out.error(&super::wrong_arity(if only_if_none_exist {
            "msetnx"
        } else {
            "mset"
        }));
        return Flow::Continue;
    }
    let written = with_db(session, out, |db, now| {
        let pairs = args[1..].chunks(2);
        if only_if_none_exist && args[1..].chunks(2).any(|pair| db.contains(&pair[0], now)) {
            return Ok(false);
        }
        for pair in pairs {
            let value = pair[1].clone();
            strings::set(db, &pair[0], value, SetOptions::default(), now)?;
        }
        Ok(true)
    });
    match (written, only_if_none_exist) {
        (None, _) => {}
        (Some(_), false) => out.ok(),
        (Some(written), true) => out.reply().integer(i64::from(written)),
    }
    Flow::Continue
}

/// `MSET key value [key value ...]`
pub const MSET: CommandSpec = CommandSpec {
    name: "mset",
    full_name: "mset",
    arity: -3,
    flags: flag::WRITE,
    summary: "Atomically creates or modifies the string values of one or more keys.",
    complexity: "O(N) where N is the number of keys to set.",
    handler: Some(|session, out, args| mset(session, out, args, false)),
    ..WRITE
};

/// `MSETNX key value [key value ...]`
pub const MSETNX: CommandSpec = CommandSpec {
    name: "msetnx",
    full_name: "msetnx",
    summary:
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    handler: Some(|session, out, args| mset(session, out, args, true)),
    ..MSET
};

fn incr(session: &mut Session, out: &mut Output<'_>, key: &Bytes, delta: Option<i64>) -> Flow {
    let Some(delta) = delta else {
        out.error(NOT_AN_INTEGER);
        return Flow::Continue;
    };
    if let Some(value) = with_db(session, out, |db, now| {
        strings::incr_by(db, key, delta, now)
    }) {
        out.reply().integer(value);
    }
    Flow::Continue
}

/// `INCR key`
pub const INCR: CommandSpec = CommandSpec {
    name: "incr",
    full_name: "incr",
    arity: 2,
    summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    handler: Some(|session, out, args| incr(session, out, &args[1], Some(1))),
    ..WRITE
};

/// `DECR key`
pub const DECR: CommandSpec = CommandSpec {
    name: "decr",
    full_name: "decr",
    summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    handler: Some(|session, out, args| incr(session, out, &args[1], Some(-1))),
    ..INCR
};

/// `INCRBY key increment`
pub const INCRBY: CommandSpec = CommandSpec {
    name: "incrby",
    full_name: "incrby",
    arity: 3,
    summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    handler: Some(|session, out, args| incr(session, out, &args[1], parse_i64(&args[2]))),
    ..INCR
};

/// `DECRBY key decrement`
pub const DECRBY: CommandSpec = CommandSpec {
    name: "decrby",
    full_name: "decrby",
    summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
    // i64::MIN has no negation: Redis rejects it with the same error.
    handler: Some(|session, out, args| {
        let delta = parse_i64(&args[2]).and_then(i64::checked_neg);
        incr(session, out, &args[1], delta)
    }),
    ..INCRBY
};

/// `INCRBYFLOAT key increment`
pub const INCRBYFLOAT: CommandSpec = CommandSpec {
    name: "incrbyfloat",
    full_name: "incrbyfloat",
    arity: 3,
    since: "2.6.0",
    summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    handler: Some(|session, out, args| {
        // An infinite increment parses; the store then refuses the infinite result with
        // Redis's "increment would produce NaN or Infinity".
        let Some(delta) = strings::parse_float(&args[2]) else {
            out.error("ERR value is not a valid float");
            return Flow::Continue;
        };
        if let Some(value) = with_db(session, out, |db, now| strings::incr_by_float(db, &args[1], delta, now)) {
            // The result, not the increment: float formatting must not differ on replay.
            session.propagate_as(vec![record(&[b"SET", &args[1], &value, b"KEEPTTL"])]);
            out.reply().bulk(&value);
        }
        Flow::Continue
    }),
    ..INCR
};

/// `APPEND key value`
pub const APPEND: CommandSpec = CommandSpec {
    name: "append",
    full_name: "append",
    arity: 3,
    since: "2.0.0",
    summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    handler: Some(|session, out, args| {
        let max = session.shared.config.proto_max_bulk_len();
        if let Some(len) = with_db(session, out, |db, now| {
            strings::append(db, &args[1], &args[2], max, now)
        }) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `STRLEN key`
pub const STRLEN: CommandSpec = CommandSpec {
    name: "strlen",
    full_name: "strlen",
    arity: 2,
    since: "2.2.0",
    summary: "Returns the length of a string value.",
    handler: Some(|session, out, args| {
        if let Some(len) = with_db(session, out, |db, now| strings::strlen(db, &args[1], now)) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..READ
};

/// `GETRANGE key start end`
pub const GETRANGE: CommandSpec = CommandSpec {
    name: "getrange",
    full_name: "getrange",
    arity: 4,
    since: "2.4.0",
    flags: flag::READONLY,
    summary: "Returns a substring of the string stored at a key.",
    complexity: "O(N) where N is the length of the returned string.",
    handler: Some(|session, out, args| {
        let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if let Some(value) = with_db(session, out, |db, now| {
            strings::get_range(db, &args[1], start, end, now)
        }) {
            out.reply().bulk(&value);
        }
        Flow::Continue
    }),
    ..READ
};

/// `SETRANGE key offset value`
pub const SETRANGE: CommandSpec = CommandSpec {
    name: "setrange",
    full_name: "setrange",
    arity: 4,
    since: "2.2.0",
    flags: flag::WRITE,
    summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
    handler: Some(|session, out, args| {
        let Some(offset) = parse_i64(&args[2]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        let Ok(offset) = usize::try_from(offset) else {
            out.error("ERR offset is out of range");
            return Flow::Continue;
        };
        let max = session.shared.config.proto_max_bulk_len();
        if let Some(len) = with_db(session, out, |db, now| strings::set_range(db, &args[1], offset, &args[3], max, now)) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};
