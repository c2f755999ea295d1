//! List commands: LPUSH/RPUSH(X), LPOP/RPOP, LRANGE, LLEN, LINDEX, LSET, LTRIM, LREM,
//! LINSERT, LPOS, LMOVE, RPOPLPUSH, LMPOP. The blocking ones are in
//! [`super::lists_blocking`].

use bytes::Bytes;
use herald_store::blocking::Served;
use herald_store::lists::{self, End};

use super::lists_blocking::write_served;
use super::{flag, parse_i64, with_db, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR};
use crate::session::{BlockedReply, Flow, Output, Session};

const READ: CommandSpec = CommandSpec {
    group: "list",
    flags: flag::READONLY,
    acl_categories: &["@read", "@list", "@slow"],
    ..BASE
};

pub(super) const WRITE: CommandSpec = CommandSpec {
    group: "list",
    flags: flag::WRITE | flag::FAST,
    acl_categories: &["@write", "@list", "@fast"],
    ..BASE
};

pub(super) fn parse_end(arg: &[u8]) -> Option<End> {
    match &arg.to_ascii_uppercase()[..] {
        b"LEFT" => Some(End::Left),
        b"RIGHT" => Some(End::Right),
        _ => None,
    }
}

fn push(
    session: &mut Session,
    out: &mut Output<'_>,
    args: &[Bytes],
    end: End,
    only_if_exists: bool,
) -> Flow {
    if let Some(len) = with_db(session, out, |db, now| {
        lists::push(db, &args[1], &args[2..], end, only_if_exists, now)
    }) {
        out.reply().integer(len as i64);
    }
    Flow::Continue
}

/// `LPUSH key element [element ...]`
pub const LPUSH: CommandSpec = CommandSpec {
    name: "lpush",
    full_name: "lpush",
    arity: -3,
    summary: "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
    complexity: "O(1) for each element added.",
    handler: Some(|session, out, args| push(session, out, args, End::Left, false)),
    ..WRITE
};

/// `RPUSH key element [element ...]`
pub const RPUSH: CommandSpec = CommandSpec {
    name: "rpush",
    full_name: "rpush",
    summary: "Appends one or more elements to a list. Creates the key if it doesn't exist.",
    handler: Some(|session, out, args| push(session, out, args, End::Right, false)),
    ..LPUSH
};

/// `LPUSHX key element [element ...]`
pub const LPUSHX: CommandSpec = CommandSpec {
    name: "lpushx",
    full_name: "lpushx",
    since: "2.2.0",
    summary: "Prepends one or more elements to a list only when the list exists.",
    handler: Some(|session, out, args| push(session, out, args, End::Left, true)),
    ..LPUSH
};

/// `RPUSHX key element [element ...]`
pub const RPUSHX: CommandSpec = CommandSpec {
    name: "rpushx",
    full_name: "rpushx",
    since: "2.2.0",
    summary: "Appends an element to a list only when the list exists.",
    handler: Some(|session, out, args| push(session, out, args, End::Right, true)),
    ..LPUSH
};

fn pop(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], end: End) -> Flow {
    let count = match args.get(2) {
        None => None,
        Some(arg) => match parse_i64(arg) {
            None => {
                out.error(NOT_AN_INTEGER);
                return Flow::Continue;
            }
            Some(n) if n < 0 => {
                out.error("ERR value is out of range, must be positive");
                return Flow::Continue;
            }
            Some(n) => Some(n as usize),
        },
    };
    if args.len() > 3 {
        out.error(&super::wrong_arity(session.current_command()));
        return Flow::Continue;
    }
    let Some(popped) = with_db(session, out, |db, now| {
        lists::pop(db, &args[1], end, count.unwrap_or(1), now)
    }) else {
        return Flow::Continue;
    };
    let mut reply = out.reply();
    match (count, popped) {
        (None, popped) => reply.optional_bulk(
            popped
                .as_ref()
                .and_then(|items| items.first())
                .map(|b| &b[..]),
        ),
        (Some(_), None) => reply.null_array(),
        (Some(_), Some(items)) => {
            reply.array(items.len());
            for item in &items {
                reply.bulk(item);
            }
        }
    }
    Flow::Continue
}

/// `LPOP key [count]`
pub const LPOP: CommandSpec = CommandSpec {
    name: "lpop",
    full_name: "lpop",
    arity: -2,
    summary: "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
    complexity: "O(N) where N is the number of elements returned",
    handler: Some(|session, out, args| pop(session, out, args, End::Left)),
    ..WRITE
};

/// `RPOP key [count]`
pub const RPOP: CommandSpec = CommandSpec {
    name: "rpop",
    full_name: "rpop",
    summary: "Returns and removes the last elements of a list. Deletes the list if the last element was popped.",
    handler: Some(|session, out, args| pop(session, out, args, End::Right)),
    ..LPOP
};

fn two_integers(out: &mut Output<'_>, a: &[u8], b: &[u8]) -> Option<(i64, i64)> {
    match (parse_i64(a), parse_i64(b)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            out.error(NOT_AN_INTEGER);
            None
        }
    }
}

/// `LRANGE key start stop`
pub const LRANGE: CommandSpec = CommandSpec {
    name: "lrange",
    full_name: "lrange",
    arity: 4,
    summary: "Returns a range of elements from a list.",
    complexity: "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
    handler: Some(|session, out, args| {
        let Some((start, stop)) = two_integers(out, &args[2], &args[3]) else {
            return Flow::Continue;
        };
        if let Some(items) = with_db(session, out, |db, now| lists::range(db, &args[1], start, stop, now)) {
            let mut reply = out.reply();
            reply.array(items.len());
            for item in &items {
                reply.bulk(item);
            }
        }
        Flow::Continue
    }),
    ..READ
};

/// `LLEN key`
pub const LLEN: CommandSpec = CommandSpec {
    name: "llen",
    full_name: "llen",
    arity: 2,
    flags: flag::READONLY | flag::FAST,
    summary: "Returns the length of a list.",
    acl_categories: &["@read", "@list", "@fast"],
    handler: Some(|session, out, args| {
        if let Some(len) = with_db(session, out, |db, now| lists::len(db, &args[1], now)) {
            out.reply().integer(len as i64);
        }
        Flow::Continue
    }),
    ..READ
};

/// `LINDEX key index`
pub const LINDEX: CommandSpec = CommandSpec {
    name: "lindex",
    full_name: "lindex",
    arity: 3,
    summary: "Returns an element from a list by its index.",
    complexity:
        "O(N) where N is the number of elements to traverse to get to the element at index.",
    handler: Some(|session, out, args| {
        let Some(at) = parse_i64(&args[2]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if let Some(item) = with_db(session, out, |db, now| lists::index(db, &args[1], at, now)) {
            out.reply().optional_bulk(item.as_deref());
        }
        Flow::Continue
    }),
    ..READ
};

/// `LSET key index element`
pub const LSET: CommandSpec = CommandSpec {
    name: "lset",
    full_name: "lset",
    arity: 4,
    flags: flag::WRITE,
    summary: "Sets the value of an element in a list by its index.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(|session, out, args| {
        let Some(at) = parse_i64(&args[2]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if with_db(session, out, |db, now| {
            lists::set(db, &args[1], at, &args[3], now)
        })
        .is_some()
        {
            out.ok();
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `LTRIM key start stop`
pub const LTRIM: CommandSpec = CommandSpec {
    name: "ltrim",
    full_name: "ltrim",
    arity: 4,
    flags: flag::WRITE,
    summary:
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(|session, out, args| {
        let Some((start, stop)) = two_integers(out, &args[2], &args[3]) else {
            return Flow::Continue;
        };
        if with_db(session, out, |db, now| {
            lists::trim(db, &args[1], start, stop, now)
        })
        .is_some()
        {
            out.ok();
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `LREM key count element`
pub const LREM: CommandSpec = CommandSpec {
    name: "lrem",
    full_name: "lrem",
    arity: 4,
    flags: flag::WRITE,
    summary: "Removes elements from a list. Deletes the list if the last element was removed.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(|session, out, args| {
        let Some(count) = parse_i64(&args[2]) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        if let Some(removed) = with_db(session, out, |db, now| {
            lists::remove(db, &args[1], count, &args[3], now)
        }) {
            out.reply().integer(removed as i64);
        }
        Flow::Continue
    }),
    ..WRITE
};

/// `LINSERT key <BEFORE | AFTER> pivot element`
pub const LINSERT: CommandSpec = CommandSpec {
    name: "linsert",
    full_name: "linsert",
    arity: 5,
    flags: flag::WRITE,
    since: "2.2.0",
    summary: "Inserts an element before or after another element in a list.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(|session, out, args| {
        let after = match &args[2].to_ascii_uppercase()[..] {
            b"BEFORE" => false,
            b"AFTER" => true,
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        };
        if let Some(len) = with_db(session, out, |db, now| {
            lists::insert(db, &args[1], after, &args[3], &args[4], now)
        }) {
            out.reply().integer(len);
        }
        Flow::Continue
    }),
    ..WRITE
};

fn lpos(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut options = args[3..].chunks(2);
    for pair in options.by_ref() {
        let [name, value] = pair else {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        };
        let Some(number) = parse_i64(value) else {
            out.error(NOT_AN_INTEGER);
            return Flow::Continue;
        };
        match &name.to_ascii_uppercase()[..] {
            b"RANK" if number == 0 => {
                out.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
                return Flow::Continue;
            }
            b"RANK" => rank = number,
            b"COUNT" if number < 0 => {
                out.error("ERR COUNT can't be negative");
                return Flow::Continue;
            }
            b"COUNT" => count = Some(number as usize),
            b"MAXLEN" if number < 0 => {
                out.error("ERR MAXLEN can't be negative");
                return Flow::Continue;
            }
            b"MAXLEN" => maxlen = number as usize,
            _ => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
        }
    }
    let found = with_db(session, out, |db, now| {
        lists::positions(
            db,
            &args[1],
            &args[2],
            rank,
            count.unwrap_or(1),
            maxlen,
            now,
        )
    });
    let Some(found) = found else {
        return Flow::Continue;
    };
    let mut reply = out.reply();
    match count {
        None => match found.first() {
            Some(&at) => reply.integer(at as i64),
            None => reply.null(),
        },
        Some(_) => {
            reply.array(found.len());
            for at in found {
                reply.integer(at as i64);
            }
        }
    }
    Flow::Continue
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub const LPOS: CommandSpec = CommandSpec {
    name: "lpos",
    full_name: "lpos",
    arity: -3,
    since: "6.0.6",
    summary: "Returns the index of matching elements in a list.",
    complexity: "O(N) where N is the number of elements in the list, for the average case.",
    handler: Some(lpos),
    ..READ
};

fn lmove(
    session: &mut Session,
    out: &mut Output<'_>,
    source: &Bytes,
    destination: &Bytes,
    from: End,
    to: End,
) -> Flow {
    if let Some(moved) = with_db(session, out, |db, now| {
        lists::move_element(db, source, destination, from, to, now)
    }) {
        out.reply().optional_bulk(moved.as_deref());
    }
    Flow::Continue
}

/// `LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>`
pub const LMOVE: CommandSpec = CommandSpec {
    name: "lmove",
    full_name: "lmove",
    arity: 5,
    flags: flag::WRITE,
    since: "6.2.0",
    summary: "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(|session, out, args| {
        let (Some(from), Some(to)) = (parse_end(&args[3]), parse_end(&args[4])) else {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        };
        lmove(session, out, &args[1], &args[2], from, to)
    }),
    ..WRITE
};

/// `RPOPLPUSH source destination`
pub const RPOPLPUSH: CommandSpec = CommandSpec {
    name: "rpoplpush",
    full_name: "rpoplpush",
    arity: 3,
    since: "1.2.0",
    summary: "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
    handler: Some(|session, out, args| lmove(session, out, &args[1], &args[2], End::Right, End::Left)),
    ..LMOVE
};

/// Parses `numkeys key [key ...] <LEFT | RIGHT> [COUNT count]` (LMPOP, BLMPOP).
pub(super) fn parse_mpop(out: &mut Output<'_>, args: &[Bytes]) -> Option<(Vec<Bytes>, End, usize)> {
    let numkeys = match args.first().and_then(|arg| parse_i64(arg)) {
        Some(n) if n > 0 => n as usize,
        Some(_) => {
            out.error("ERR numkeys should be greater than 0");
            return None;
        }
        None => {
            out.error(NOT_AN_INTEGER);
            return None;
        }
    };
    let Some(keys) = args.get(1..1 + numkeys) else {
        out.error(SYNTAX_ERROR);
        return None;
    };
    let rest = &args[1 + numkeys..];
    let Some(end) = rest.first().and_then(|arg| parse_end(arg)) else {
        out.error(SYNTAX_ERROR);
        return None;
    };
    let count = match &rest[1..] {
        [] => 1,
        [option, value] if option.eq_ignore_ascii_case(b"count") => match parse_i64(value) {
            Some(n) if n > 0 => n as usize,
            _ => {
                out.error("ERR count should be greater than 0");
                return None;
            }
        },
        _ => {
            out.error(SYNTAX_ERROR);
            return None;
        }
    };
    Some((keys.to_vec(), end, count))
}

fn lmpop(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let Some((keys, end, count)) = parse_mpop(out, &args[1..]) else {
        return Flow::Continue;
    };
    let Some(popped) = with_db(session, out, |db, now| {
        lists::multi_pop(db, &keys, end, count, now)
    }) else {
        return Flow::Continue;
    };
    let mut reply = out.reply();
    match popped {
        None => reply.null_array(),
        Some((key, values)) => write_served(
            &mut reply,
            BlockedReply::KeyAndElements,
            Some(Served::Popped { key, values }),
        ),
    }
    Flow::Continue
}

/// `LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]`
pub const LMPOP: CommandSpec = CommandSpec {
    name: "lmpop",
    full_name: "lmpop",
    arity: -4,
    flags: flag::WRITE,
    since: "7.0.0",
    summary: "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
    complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
    acl_categories: &["@write", "@list", "@slow"],
    handler: Some(lmpop),
    ..WRITE
};
