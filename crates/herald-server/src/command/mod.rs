//! The declarative command table and everything that reads it: name resolution, arity
//! checks, and the COMMAND introspection command.
//!
//! Each command is data ([`CommandSpec`]): name, arity (Redis convention: `n` exact,
//! `-n` at least n, counting the name), flags, documentation, and its handler. Container
//! commands (CLIENT, CONFIG, PUBSUB, COMMAND) list subcommands with their own arity, and
//! errors name them as Redis does (`client|list`).
//!
//! [`COMMANDS`] lists them all (`command/table.rs`). Handlers live in one file per
//! family: [`pubsub`], [`connection`], [`client`], [`server`], [`shutdown`],
//! [`introspection`], [`keys`], [`strings`], [`lists`] and [`lists_blocking`],
//! [`hashes`], [`transactions`], [`persistence`], [`waits`], and the streams in [`streams`],
//! [`streams_read`], [`streams_groups`], [`streams_info`]. A handler parses its
//! arguments, checks for trailing garbage, applies the command and writes the reply; it
//! never blocks (SHUTDOWN's fsync and the blocking pops' waits run in the connection).

pub mod client;
pub mod connection;
pub mod hashes;
pub mod introspection;
pub mod keys;
pub mod lists;
pub mod lists_blocking;
pub mod memory;
pub mod persistence;
pub mod pubsub;
pub mod server;
pub mod shutdown;
pub mod streams;
pub mod streams_groups;
pub mod streams_info;
pub mod streams_read;
pub mod strings;
mod table;
pub mod transactions;
pub mod waits;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use foldhash::fast::FixedState;
use herald_engine::Scope;
use herald_store::events::KeyEvent;
use herald_store::{Db, Keyspace, StoreError};

use crate::server::Shared;
use crate::session::{Flow, Output, Session};

/// A command handler: runs with the session, writes to the output.
pub type Handler = fn(&mut Session, &mut Output<'_>, &[Bytes]) -> Flow;

/// Redis command flags, as COMMAND INFO reports them.
pub mod flag {
    /// May modify data.
    pub const WRITE: u32 = 1;
    /// Reads data only.
    pub const READONLY: u32 = 1 << 1;
    /// Administrative command.
    pub const ADMIN: u32 = 1 << 2;
    /// Pub/sub related.
    pub const PUBSUB: u32 = 1 << 3;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 4;
    /// Allowed while loading data.
    pub const LOADING: u32 = 1 << 5;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 6;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 7;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 8;
    /// Allowed while the server is busy.
    pub const ALLOW_BUSY: u32 = 1 << 9;
    /// Refused inside MULTI (the transaction then fails, as Redis's SHUTDOWN).
    pub const NO_MULTI: u32 = 1 << 10;
    /// Herald only, not reported: allowed on a RESP2 connection that has subscriptions.
    pub const SUBSCRIBED_OK: u32 = 1 << 31;
    /// Herald only, not reported (Redis 7.0 does not show it for PUBLISH either): the
    /// command is propagated to replicas (PUBLISH, SPUBLISH), so a monitor, which Redis
    /// counts as a replica, may not run it.
    pub const MAY_REPLICATE: u32 = 1 << 29;
    /// Herald only, not reported: the command's deliveries may stay staged in the
    /// session's flush list ([`herald_engine::PendingWakes::staging_for`]) while the next
    /// command runs (PUBLISH, SPUBLISH); any other command commits them first.
    pub const STAGES_DELIVERIES: u32 = 1 << 28;
    /// Herald only, not reported: runs at once inside MULTI instead of being queued
    /// (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET, as Redis).
    pub const RUNS_IN_MULTI: u32 = 1 << 30;

    /// Flag names in COMMAND INFO order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// One command or subcommand.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name (`list` for CLIENT LIST).
    pub name: &'static str,
    /// Name as errors and COMMAND show it (`client|list`).
    pub full_name: &'static str,
    /// Redis arity: `n` exactly n arguments including the name, `-n` at least n.
    pub arity: i32,
    /// [`flag`] bits.
    pub flags: u32,
    /// COMMAND DOCS group (`pubsub`, `connection`, `server`, `generic`).
    pub group: &'static str,
    /// One-line summary for COMMAND DOCS.
    pub summary: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// ACL categories, with `@`.
    pub acl_categories: &'static [&'static str],
    /// Subcommands of a container command.
    pub subcommands: &'static [CommandSpec],
    /// The handler; `None` for containers that need a subcommand.
    pub handler: Option<Handler>,
}

impl CommandSpec {
    /// Allowed before AUTH.
    pub fn no_auth(&self) -> bool {
        self.flags & flag::NO_AUTH != 0
    }

    /// Runs immediately inside MULTI instead of being queued.
    pub fn runs_inside_multi(&self) -> bool {
        self.flags & flag::RUNS_IN_MULTI != 0
    }

    /// Refused inside MULTI.
    pub fn refused_inside_multi(&self) -> bool {
        self.flags & flag::NO_MULTI != 0
    }

    /// Allowed in RESP2 subscribed context.
    pub fn allowed_while_subscribed(&self) -> bool {
        self.flags & flag::SUBSCRIBED_OK != 0
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == arity
        } else {
            argc >= arity
        }
    }
}

/// Defaults for table entries; each entry overrides what it needs.
pub const BASE: CommandSpec = CommandSpec {
    name: "",
    full_name: "",
    arity: 1,
    flags: 0,
    group: "server",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    acl_categories: &[],
    subcommands: &[],
    handler: None,
};

pub use table::COMMANDS;

/// Looked up once per request: a fixed-seed foldhash rather than SipHash (the keys are
/// the static command names, so there is nothing for a client to flood).
static BY_NAME: LazyLock<HashMap<&'static [u8], &'static CommandSpec, FixedState>> =
    LazyLock::new(|| {
        COMMANDS
            .iter()
            .map(|spec| (spec.name.as_bytes(), *spec))
            .collect()
    });

/// Longest command name looked up; longer names are unknown without allocating.
const MAX_NAME_BYTES: usize = 32;

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(name, |key| BY_NAME.get(key).copied())
}

/// Looks `name` up lowercased; the table's names are ASCII, so no UTF-8 check is needed.
fn find<T>(name: &[u8], get: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
    if name.len() > MAX_NAME_BYTES {
        return None;
    }
    let mut lower = [0u8; MAX_NAME_BYTES];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    get(lower)
}

fn find_subcommand(container: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    find(name, |key| {
        container
            .subcommands
            .iter()
            .find(|sub| sub.name.as_bytes() == key)
    })
}

/// The outcome of resolving a request's name and arity.
#[derive(Debug)]
pub enum Resolved {
    /// Runnable.
    Command(&'static CommandSpec),
    /// Rejected before running, with Redis's error text.
    Rejected {
        /// The error reply.
        error: String,
        /// Name for CLIENT LIST `cmd=`.
        full_name: &'static str,
    },
}

/// The last command a connection looked up: a pipeline usually repeats one command,
/// and comparing its name case-insensitively with the table's is cheaper than
/// lowercasing and hashing it again. One pointer per connection.
#[derive(Debug, Default)]
pub struct LookupCache {
    last: Option<&'static CommandSpec>,
}

impl LookupCache {
    /// [`lookup`], answered without hashing when `name` names the last command found.
    pub fn lookup(&mut self, name: &[u8]) -> Option<&'static CommandSpec> {
        if let Some(spec) = self.last {
            if spec.name.as_bytes().eq_ignore_ascii_case(name) {
                return Some(spec);
            }
        }
        let spec = lookup(name)?;
        self.last = Some(spec);
        Some(spec)
    }
}

/// Resolves `args` to a command or subcommand and checks its arity.
pub fn resolve(args: &[Bytes]) -> Resolved {
    resolve_cached(args, &mut LookupCache::default())
}

/// [`resolve`], with the connection's [`LookupCache`].
pub fn resolve_cached(args: &[Bytes], cache: &mut LookupCache) -> Resolved {
    let Some(name) = args.first() else {
        return Resolved::Rejected {
            error: "ERR empty command".to_owned(),
            full_name: "NULL",
        };
    };
    let Some(spec) = cache.lookup(name) else {
        return Resolved::Rejected {
            error: unknown_command(args),
            full_name: "NULL",
        };
    };
    let spec = match (spec.subcommands.is_empty(), args.get(1)) {
        (false, Some(sub)) => match find_subcommand(spec, sub) {
            Some(sub) => sub,
            None if spec.handler.is_some() && spec.arity_ok(args.len()) => spec,
            None => {
                return Resolved::Rejected {
                    error: unknown_subcommand(spec, sub),
                    full_name: spec.full_name,
                }
            }
        },
        _ => spec,
    };
    if !spec.arity_ok(args.len()) || spec.handler.is_none() {
        return Resolved::Rejected {
            error: wrong_arity(spec.full_name),
            full_name: spec.full_name,
        };
    }
    Resolved::Command(spec)
}

/// `ERR wrong number of arguments for '<name>' command`.
pub fn wrong_arity(full_name: &str) -> String {
    format!("ERR wrong number of arguments for '{full_name}' command")
}

/// Redis's text, name and arguments cut at 128 bytes, CR/LF blanked.
fn unknown_command(args: &[Bytes]) -> String {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]);
        listed.push_str(&format!("'{text}' "));
    }
    let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]);
    format!("ERR unknown command '{name}', with args beginning with: {listed}")
}

fn unknown_subcommand(container: &CommandSpec, sub: &[u8]) -> String {
    let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
    format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        container.name.to_ascii_uppercase()
    )
}

/// Replies to a HELP subcommand: Redis's header line, then the lines given.
pub fn reply_help(out: &mut Output<'_>, container: &str, lines: &[&str]) {
    let mut reply = out.reply();
    // The header, the lines, and the two-line HELP footer.
    reply.array(lines.len() + 3);
    reply.simple(&format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        container.to_ascii_uppercase()
    ));
    for line in lines {
        reply.simple(line);
    }
    reply.simple("HELP");
    reply.simple("    Prints this help.");
}

/// Parses an argument as a Redis integer (`ERR value is not an integer or out of range`).
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    herald_store::strings::parse_integer(arg)
}

/// Parses a blocking timeout in milliseconds (XREAD BLOCK, WAIT, WAITAOF), with Redis's
/// errors; `None` for 0, which waits for ever.
pub fn parse_timeout_millis(arg: &[u8]) -> Result<Option<std::time::Duration>, &'static str> {
    let millis = parse_i64(arg).ok_or("ERR timeout is not an integer or out of range")?;
    let millis = u64::try_from(millis).map_err(|_| "ERR timeout is negative")?;
    Ok((millis > 0).then(|| std::time::Duration::from_millis(millis)))
}

/// Runs `f` on the session's database with the current time, replying with the error
/// text of a failed operation; the keyspace events it records are published once the
/// keyspace lock is released.
pub fn with_db<T>(
    session: &Session,
    out: &mut Output<'_>,
    f: impl FnOnce(&mut Db, u64) -> Result<T, StoreError>,
) -> Option<T> {
    let in_transaction = session.shared.store.in_atomic();
    let persistence = session.shared.persistence_now();
    let (flags, result, events) = session.shared.store.with(|keyspace| {
        let flags = keyspace.notify_flags();
        let (result, events) = match keyspace.db(session.db) {
            Ok(db) => {
                let now = session.shared.now_ms();
                let result = f(db, now);
                if !in_transaction {
                    herald_store::blocking::serve_ready(db, now);
                }
                (result, db.take_events())
            }
            Err(err) => (Err(err), Vec::new()),
        };
        if let Some(persistence) = persistence.as_ref() {
            persistence.log_effects(keyspace);
        }
        (flags, result, events)
    });
    publish_key_events(
        &session.shared,
        flags,
        events.into_iter().map(|event| (session.db, event)),
    );
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            out.error(&err.to_string());
            None
        }
    }
}

/// Runs `f` on the whole keyspace (commands that span databases), then publishes the
/// events it recorded, as [`with_db`] does.
pub fn with_keyspace<T>(
    session: &Session,
    out: &mut Output<'_>,
    f: impl FnOnce(&mut Keyspace, u64) -> Result<T, StoreError>,
) -> Option<T> {
    let in_transaction = session.shared.store.in_atomic();
    let persistence = session.shared.persistence_now();
    let (result, flags, events) = session.shared.store.with(|keyspace| {
        let now = session.shared.now_ms();
        let result = f(keyspace, now);
        if !in_transaction {
            keyspace.serve_blocked(now);
        }
        if let Some(persistence) = persistence.as_ref() {
            persistence.log_effects(keyspace);
        }
        (result, keyspace.notify_flags(), keyspace.take_events())
    });
    publish_key_events(&session.shared, flags, events);
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            out.error(&err.to_string());
            None
        }
    }
}

/// Publishes keyspace events as Redis does: the `__keyspace@<db>__:<key>` message (payload:
/// the event name) before the `__keyevent@<db>__:<event>` message (payload: the key).
pub fn publish_key_events(
    shared: &Shared,
    flags: u32,
    events: impl IntoIterator<Item = (usize, KeyEvent)>,
) {
    for (db, event) in events {
        if flags & herald_store::events::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(&event.key);
            shared.engine.publish(
                Scope::Classic,
                Bytes::from(channel),
                Bytes::from_static(event.name.as_bytes()),
            );
        }
        if flags & herald_store::events::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{}", event.name);
            shared
                .engine
                .publish(Scope::Classic, Bytes::from(channel), event.key.clone());
        }
    }
}

/// Turns a relative or absolute expiry argument into Unix milliseconds; `None` after
/// replying with Redis's error when it is not a positive integer or overflows.
pub fn expiry_at(
    out: &mut Output<'_>,
    arg: &[u8],
    unit_ms: u64,
    absolute: bool,
    command: &str,
) -> Option<u64> {
    let Some(n) = parse_i64(arg) else {
        out.error(NOT_AN_INTEGER);
        return None;
    };
    let at = (n > 0)
        .then(|| (n as u64).checked_mul(unit_ms))
        .flatten()
        .and_then(|ms| {
            if absolute {
                Some(ms)
            } else {
                ms.checked_add(crate::server::unix_time_millis())
            }
        })
        .filter(|ms| *ms <= i64::MAX as u64);
    if at.is_none() {
        out.error(&format!("ERR invalid expire time in '{command}' command"));
    }
    at
}

/// Parses a SCAN cursor as Redis's `strtoul` does: no leading space, optional sign
/// (`-1` wraps to the largest cursor), decimal digits, `""` is 0.
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let (negative, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if arg.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// A command to log, from its words (see [`crate::session::Propagate`]).
pub fn record(words: &[&[u8]]) -> Vec<Bytes> {
    words
        .iter()
        .map(|word| Bytes::copy_from_slice(word))
        .collect()
}

/// How a change of expiry to `at` is logged: the key deleted when the time is already
/// past at `now` (the live server deleted it at once), else `PEXPIREAT key at`.
pub fn expiry_record(key: &[u8], at: u64, now: u64) -> Vec<Bytes> {
    if at <= now {
        record(&[b"DEL", key])
    } else {
        record(&[b"PEXPIREAT", key, itoa::Buffer::new().format(at).as_bytes()])
    }
}

/// The error for a non-integer argument.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
/// The generic syntax error.
pub const SYNTAX_ERROR: &str = "ERR syntax error";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn rejected(words: &[&str]) -> String {
        match resolve(&args(words)) {
            Resolved::Rejected { error, .. } => error,
            Resolved::Command(spec) => panic!("{words:?} resolved to {}", spec.full_name),
        }
    }

    #[test]
    fn the_lookup_cache_answers_as_the_table_does() {
        let mut cache = LookupCache::default();
        for spec in COMMANDS.iter() {
            let upper = spec.name.to_ascii_uppercase();
            for name in [spec.name.as_bytes(), upper.as_bytes(), upper.as_bytes()] {
                let found = cache.lookup(name).map(|found| found.full_name);
                assert_eq!(found, Some(spec.full_name), "{}", spec.name);
            }
        }
        // Alternating names, unknown ones in between (a prefix of the cached name too).
        for name in ["get", "nosuch", "SET", "se", "gEt", "getx", "nosuch", "get"] {
            let expected = lookup(name.as_bytes()).map(|spec| spec.full_name);
            assert_eq!(
                cache.lookup(name.as_bytes()).map(|spec| spec.full_name),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert!(
            matches!(resolve(&args(&["PiNg"])), Resolved::Command(spec) if spec.name == "ping")
        );
        assert!(
            matches!(resolve(&args(&["client", "LIST"])), Resolved::Command(spec) if spec.full_name == "client|list")
        );
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        assert_eq!(
            rejected(&["foo", "a", "b"]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            rejected(&["foo"]),
            "ERR unknown command 'foo', with args beginning with: "
        );
        let long = "x".repeat(300);
        let error = rejected(&[&long]);
        assert!(error.len() < 200, "{error}");
    }

    #[test]
    fn arity_and_subcommand_errors() {
        assert_eq!(
            rejected(&["subscribe"]),
            "ERR wrong number of arguments for 'subscribe' command"
        );
        assert_eq!(
            rejected(&["client"]),
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            rejected(&["client", "nope"]),
            "ERR unknown subcommand 'nope'. Try CLIENT HELP."
        );
        assert_eq!(
            rejected(&["pubsub", "numpat", "extra"]),
            "ERR wrong number of arguments for 'pubsub|numpat' command"
        );
        assert!(
            matches!(resolve(&args(&["command"])), Resolved::Command(spec) if spec.name == "command")
        );
    }

    #[test]
    fn every_table_entry_is_consistent() {
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.full_name, "{}", spec.name);
            assert!(
                spec.handler.is_some() || !spec.subcommands.is_empty(),
                "{}",
                spec.name
            );
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
            for sub in spec.subcommands {
                assert_eq!(sub.full_name, format!("{}|{}", spec.name, sub.name));
                assert!(sub.handler.is_some(), "{}", sub.full_name);
                assert!(!sub.summary.is_empty(), "{} has no summary", sub.full_name);
            }
        }
    }

    #[test]
    fn integers_like_redis() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"-01"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
    }
}
