//! Persistence commands and parameters: BGREWRITEAOF, and the `append*` settings that
//! CONFIG GET/SET and INFO persistence show.

use herald_store::aof::FsyncPolicy;

use super::{flag, CommandSpec, BASE};
use crate::config::{parse_memory, parse_yes_no};
use crate::persistence::{self, rewrite, RewriteStatus};
use crate::server::Shared;
use crate::session::Flow;

/// `BGREWRITEAOF`
pub const BGREWRITEAOF: CommandSpec = CommandSpec {
    name: "bgrewriteaof",
    full_name: "bgrewriteaof",
    arity: 1,
    flags: flag::ADMIN | flag::NOSCRIPT,
    group: "server",
    summary: "Asynchronously rewrites the append-only file to disk.",
    complexity: "O(1)",
    acl_categories: &["@admin", "@slow", "@dangerous"],
    handler: Some(|session, out, _| {
        match rewrite::start(&session.shared) {
            Ok(()) => out
                .reply()
                .simple("Background append only file rewriting started"),
            Err(refused) => out.error(&refused.to_string()),
        }
        Flow::Continue
    }),
    ..BASE
};

/// The parameters this module owns, in CONFIG GET * order.
pub const PARAMETERS: &[&str] = &[
    "appendonly",
    "appendfsync",
    "appendfilename",
    "dir",
    "aof-load-truncated",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
];

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// The value of one of [`PARAMETERS`].
pub fn parameter_value(shared: &Shared, name: &str) -> Option<String> {
    let config = shared.aof_config.lock().clone();
    Some(match name {
        "appendonly" => yes_no(shared.persistence().is_some()),
        "appendfsync" => config.settings.fsync.to_string(),
        "appendfilename" => config.settings.file_name,
        "dir" => std::fs::canonicalize(&config.settings.dir)
            .unwrap_or(config.settings.dir)
            .display()
            .to_string(),
        "aof-load-truncated" => yes_no(config.settings.load_truncated),
        "auto-aof-rewrite-percentage" => config.auto_rewrite_percentage.to_string(),
        "auto-aof-rewrite-min-size" => config.auto_rewrite_min_size.to_string(),
        _ => return None,
    })
}

/// A validated change of one of [`PARAMETERS`].
#[derive(Debug)]
pub enum Change {
    /// `appendonly yes|no`.
    AppendOnly(bool),
    /// `appendfsync`.
    Fsync(FsyncPolicy),
    /// `aof-load-truncated`.
    LoadTruncated(bool),
    /// `auto-aof-rewrite-percentage`.
    AutoPercentage(u64),
    /// `auto-aof-rewrite-min-size`.
    AutoMinSize(u64),
}

/// Validates `name value`; `None` when `name` is not one of [`PARAMETERS`].
pub fn validate(name: &str, value: &str) -> Option<Result<Change, String>> {
    let invalid = |err: crate::config::ConfigError| err.to_string();
    Some(match name {
        "appendonly" => parse_yes_no(value).map(Change::AppendOnly).map_err(invalid),
        "appendfsync" => value.parse().map(Change::Fsync).map_err(|_| {
            "argument(s) must be one of the following: always, everysec, no".to_owned()
        }),
        "aof-load-truncated" => parse_yes_no(value)
            .map(Change::LoadTruncated)
            .map_err(invalid),
        "auto-aof-rewrite-percentage" => match value.parse::<u64>() {
            Ok(n) if n <= i32::MAX as u64 => Ok(Change::AutoPercentage(n)),
            _ => Err(format!(
                "argument must be between 0 and {} inclusive",
                i32::MAX
            )),
        },
        "auto-aof-rewrite-min-size" => parse_memory(value)
            .map(Change::AutoMinSize)
            .map_err(invalid),
        "appendfilename" | "dir" => Err("can't set immutable config".to_owned()),
        _ => return None,
    })
}

/// Applies a validated change.
pub fn apply(shared: &std::sync::Arc<Shared>, change: Change) -> Result<(), String> {
    let live = shared.persistence();
    let mut config = shared.aof_config.lock();
    match change {
        Change::AppendOnly(true) => {
            drop(config);
            return persistence::enable(shared);
        }
        Change::AppendOnly(false) => {
            drop(config);
            persistence::disable(shared);
        }
        Change::Fsync(policy) => {
            config.settings.fsync = policy;
            if let Some(live) = live {
                live.writer().set_policy(policy);
            }
        }
        Change::LoadTruncated(value) => config.settings.load_truncated = value,
        Change::AutoPercentage(value) => {
            config.auto_rewrite_percentage = value;
            if let Some(live) = live {
                live.set_auto_rewrite(value, config.auto_rewrite_min_size);
            }
        }
        Change::AutoMinSize(value) => {
            config.auto_rewrite_min_size = value;
            if let Some(live) = live {
                live.set_auto_rewrite(config.auto_rewrite_percentage, value);
            }
        }
    }
    Ok(())
}

/// INFO persistence: Redis's field names.
pub fn info_fields(shared: &Shared) -> Vec<(&'static str, String)> {
    let live = shared.persistence();
    let (last_status, last_duration, in_progress, rewrites) =
        live.as_ref()
            .map_or((RewriteStatus::None, None, false, 0), |live| {
                let (status, took) = live.last_rewrite();
                (status, took, live.rewrite_in_progress(), live.rewrites())
            });
    let ok_or_err = |ok: bool| if ok { "ok" } else { "err" }.to_owned();
    let write_status = live
        .as_ref()
        .map(|live| live.writer().status())
        .map(|status| status.last_error.is_none());
    let mut fields = vec![
        ("loading", u8::from(shared.is_loading()).to_string()),
        ("async_loading", "0".to_owned()),
        ("rdb_changes_since_last_save", "0".to_owned()),
        ("rdb_bgsave_in_progress", "0".to_owned()),
        ("aof_enabled", u8::from(live.is_some()).to_string()),
        ("aof_rewrite_in_progress", u8::from(in_progress).to_string()),
        ("aof_rewrite_scheduled", "0".to_owned()),
        ("aof_rewrites", rewrites.to_string()),
        (
            "aof_last_rewrite_time_sec",
            last_duration.map_or("-1".to_owned(), |took| took.as_secs().to_string()),
        ),
        (
            "aof_last_bgrewrite_status",
            ok_or_err(last_status != RewriteStatus::Err),
        ),
        (
            "aof_last_write_status",
            ok_or_err(write_status.unwrap_or(true)),
        ),
    ];
    if let Some(live) = live {
        let status = live.writer().status();
        fields.extend([
            ("aof_current_size", status.current_size.to_string()),
            ("aof_base_size", status.base_size.to_string()),
            ("aof_buffer_length", status.buffered.to_string()),
            ("herald_aof_fsync", live.writer().policy().to_string()),
            ("herald_aof_fsyncs", status.fsyncs.to_string()),
            ("herald_aof_appends", status.appends.to_string()),
            ("herald_aof_fsync_usec", micros(status.times.fsync)),
            ("herald_aof_gather_usec", micros(status.times.gathering)),
            ("herald_aof_release_usec", micros(status.times.releasing)),
        ]);
    }
    fields
}

fn micros(duration: std::time::Duration) -> String {
    duration.as_micros().to_string()
}
