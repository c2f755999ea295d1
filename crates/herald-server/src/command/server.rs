//! Server commands: INFO, CONFIG GET/SET/RESETSTAT, TIME, MONITOR.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use herald_engine::Glob;

use super::{flag, reply_help, CommandSpec, BASE};
use crate::config::{parse_proto_max_bulk_len, parse_query_buffer_limit, ConfigError, DATABASES};
use crate::server::{unix_time_micros, Shared};
use crate::session::{Flow, Output, Session};

/// `INFO [section [section ...]]`
pub const INFO: CommandSpec = CommandSpec {
    name: "info",
    full_name: "info",
    arity: -1,
    flags: flag::LOADING | flag::STALE,
    summary: "Returns information and statistics about the server.",
    acl_categories: &["@slow", "@dangerous"],
    handler: Some(|session, out, args| {
        let wanted: Vec<String> = args[1..]
            .iter()
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let text = crate::info::render(&session.shared, &crate::info::selected_sections(&wanted));
        out.reply().verbatim(b"txt", text.as_bytes());
        Flow::Continue
    }),
    ..BASE
};

/// `MONITOR`: streams every command the server runs to this client (`crate::monitor`).
pub const MONITOR: CommandSpec = CommandSpec {
    name: "monitor",
    full_name: "monitor",
    arity: 1,
    flags: flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE,
    summary: "Listens for all requests received by the server in real-time.",
    acl_categories: &["@admin", "@slow", "@dangerous"],
    handler: Some(|session, out, _| {
        if session.executing_transaction {
            // Redis's text: a transaction's client may not block, and a monitor would.
            out.error("ERR MONITOR isn't allowed for DENY BLOCKING client");
            return Flow::Continue;
        }
        // Already monitoring: Redis answers nothing at all.
        if !session.monitoring {
            let outbox = std::sync::Arc::clone(session.outbox());
            if session.shared.monitors.add(session.handle.id, outbox) {
                session.monitoring = true;
                session.update_client_class();
            }
            out.ok();
        }
        Flow::Continue
    }),
    ..BASE
};

/// `TIME`
pub const TIME: CommandSpec = CommandSpec {
    name: "time",
    full_name: "time",
    arity: 1,
    flags: flag::LOADING | flag::STALE | flag::FAST,
    summary: "Returns the server time.",
    since: "2.6.0",
    acl_categories: &["@fast"],
    handler: Some(|_, out, _| {
        let micros = unix_time_micros();
        let mut reply = out.reply();
        reply.array(2);
        reply.bulk((micros / 1_000_000).to_string().as_bytes());
        reply.bulk((micros % 1_000_000).to_string().as_bytes());
        Flow::Continue
    }),
    ..BASE
};

const CONFIG_SUB: CommandSpec = CommandSpec {
    flags: flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE,
    acl_categories: &["@admin", "@slow", "@dangerous"],
    ..BASE
};

/// `CONFIG <subcommand>`
pub const CONFIG: CommandSpec =
    CommandSpec {
        name: "config",
        full_name: "config",
        arity: -2,
        summary: "A container for server configuration commands.",
        complexity: "Depends on subcommand.",
        acl_categories: &["@slow"],
        subcommands: &[
            CommandSpec {
                name: "get",
                full_name: "config|get",
                arity: -3,
                summary: "Returns the effective values of configuration parameters.",
                complexity: "O(N) when N is the number of configuration parameters provided",
                handler: Some(config_get),
                ..CONFIG_SUB
            },
            CommandSpec {
                name: "set",
                full_name: "config|set",
                arity: -4,
                summary: "Sets configuration parameters in-flight.",
                complexity: "O(N) when N is the number of configuration parameters provided",
                handler: Some(config_set),
                ..CONFIG_SUB
            },
            CommandSpec {
                name: "resetstat",
                full_name: "config|resetstat",
                arity: 2,
                summary: "Resets the server's statistics.",
                handler: Some(|session, out, _| {
                    reset_stats(&session.shared);
                    out.ok();
                    Flow::Continue
                }),
                ..CONFIG_SUB
            },
            CommandSpec {
                name: "help",
                full_name: "config|help",
                arity: 2,
                summary: "Returns helpful text about the different subcommands.",
                handler: Some(|_, out, _| {
                    reply_help(out, "config", &[
                    "GET <pattern>",
                    "    Return parameters matching the glob-like <pattern> and their values.",
                    "SET <directive> <value>",
                    "    Set the configuration <directive> to <value>.",
                    "RESETSTAT",
                    "    Reset statistics reported by the INFO command.",
                ]);
                    Flow::Continue
                }),
                ..CONFIG_SUB
            },
        ],
        ..BASE
    };

/// Parameters CONFIG GET shows, in CONFIG GET * order (the persistence ones follow,
/// from [`super::persistence::PARAMETERS`]).
const PARAMETERS: &[&str] = &[
    "bind",
    "port",
    "databases",
    "requirepass",
    "maxclients",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "client-output-buffer-limit",
    "notify-keyspace-events",
];

fn parameter_value(shared: &Shared, name: &str) -> String {
    let config = &shared.config;
    match name {
        "bind" => shared
            .bind
            .iter()
            .map(|addr| addr.ip().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        "port" => shared.port.to_string(),
        "databases" => DATABASES.to_string(),
        "requirepass" => config.requirepass().unwrap_or_default(),
        "maxclients" => config.maxclients().to_string(),
        "proto-max-bulk-len" => config.proto_max_bulk_len().to_string(),
        "client-query-buffer-limit" => config.query_buffer_limit().to_string(),
        "client-output-buffer-limit" => config.output_limits_text(),
        "notify-keyspace-events" => herald_store::events::format_flags(
            shared.store.with(|keyspace| keyspace.notify_flags()),
        ),
        other => super::persistence::parameter_value(shared, other).unwrap_or_default(),
    }
}

fn config_get(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let globs: Vec<Glob> = args[2..]
        .iter()
        .map(|pattern| Glob::new(&pattern.to_ascii_lowercase()))
        .collect();
    let matched: Vec<&str> = PARAMETERS
        .iter()
        .chain(super::persistence::PARAMETERS)
        .copied()
        .filter(|name| globs.iter().any(|glob| glob.matches(name.as_bytes())))
        .collect();
    let mut reply = out.reply();
    reply.map(matched.len());
    for name in matched {
        reply.bulk(name.as_bytes());
        reply.bulk(parameter_value(&session.shared, name).as_bytes());
    }
    Flow::Continue
}

/// One validated CONFIG SET change, applied only once every pair has validated.
enum Change {
    RequirePass(Option<String>),
    MaxClients(u64),
    ProtoMaxBulkLen(String),
    QueryBufferLimit(String),
    OutputLimits(String),
    NotifyKeyspaceEvents(u32),
    Persistence(super::persistence::Change),
}

fn validate(name: &str, value: &str) -> Result<Change, String> {
    let failed = |err: ConfigError| err.to_string();
    match name {
        "bind" | "port" | "databases" => Err("can't set immutable config".to_owned()),
        "requirepass" => Ok(Change::RequirePass(Some(value.to_owned()))),
        "maxclients" => {
            let n: u64 = value.parse().map_err(|_| failed(ConfigError::BadInteger))?;
            if !(1..=1_000_000).contains(&n) {
                return Err(failed(ConfigError::OutOfRange {
                    min: 1,
                    max: 1_000_000,
                }));
            }
            Ok(Change::MaxClients(n))
        }
        "proto-max-bulk-len" => {
            parse_proto_max_bulk_len(value).map_err(failed)?;
            Ok(Change::ProtoMaxBulkLen(value.to_owned()))
        }
        "client-query-buffer-limit" => {
            parse_query_buffer_limit(value).map_err(failed)?;
            Ok(Change::QueryBufferLimit(value.to_owned()))
        }
        "client-output-buffer-limit" => {
            crate::config::parse_output_limits(value).map_err(failed)?;
            Ok(Change::OutputLimits(value.to_owned()))
        }
        "notify-keyspace-events" => herald_store::events::parse_flags(value)
            .map(Change::NotifyKeyspaceEvents)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_owned()),
        other => match super::persistence::validate(other, value) {
            Some(result) => result.map(Change::Persistence),
            None => Err(String::new()),
        },
    }
}

fn config_set(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let pairs = &args[2..];
    if !pairs.len().is_multiple_of(2) {
        out.error(&super::wrong_arity("config|set"));
        return Flow::Continue;
    }
    let mut seen = Vec::new();
    let mut changes = Vec::new();
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        if seen.contains(&name) {
            out.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
            ));
            return Flow::Continue;
        }
        match validate(&name, &value) {
            Ok(change) => changes.push(change),
            Err(reason) if reason.is_empty() => {
                out.error(&format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
                return Flow::Continue;
            }
            Err(reason) => {
                out.error(&format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
                ));
                return Flow::Continue;
            }
        }
        seen.push(name);
    }
    let config = &session.shared.config;
    for change in changes {
        // Every value was validated above, so these cannot fail; an error here would be
        // a bug in `validate`, reported rather than ignored.
        let applied = match change {
            Change::RequirePass(password) => {
                config.set_requirepass(password);
                Ok(())
            }
            Change::MaxClients(n) => config.set_maxclients(n),
            Change::ProtoMaxBulkLen(value) => config.set_proto_max_bulk_len(&value),
            Change::QueryBufferLimit(value) => config.set_query_buffer_limit(&value),
            Change::OutputLimits(value) => config.set_output_limits(&value),
            Change::NotifyKeyspaceEvents(flags) => {
                session
                    .shared
                    .store
                    .with(|keyspace| keyspace.set_notify_flags(flags));
                Ok(())
            }
            Change::Persistence(change) => {
                // Turning persistence on opens a file: the one change that can still fail.
                if let Err(reason) = super::persistence::apply(&session.shared, change) {
                    tracing::error!(%reason, "CONFIG SET appendonly failed");
                    out.error(&format!(
                        "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {reason}"
                    ));
                    return Flow::Continue;
                }
                Ok(())
            }
        };
        if let Err(err) = applied {
            tracing::error!(%err, "validated CONFIG SET value failed to apply");
        }
    }
    tracing::info!(client = %session.handle.id, parameters = ?seen, "CONFIG SET");
    out.ok();
    Flow::Continue
}

fn reset_stats(shared: &Shared) {
    let stats = &shared.stats;
    for counter in [
        &stats.connections_received,
        &stats.rejected_connections,
        &stats.output_limit_disconnections,
        &stats.query_limit_disconnections,
        &stats.protocol_errors,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    for counter in [
        &stats.commands_processed,
        &stats.net_input_bytes,
        &stats.net_output_bytes,
        &stats.deliveries_written,
    ] {
        counter.reset();
    }
    stats.commands.reset();
}
