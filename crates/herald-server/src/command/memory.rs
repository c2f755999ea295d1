//! MEMORY STATS, MEMORY PURGE, MEMORY MALLOC-STATS, MEMORY DOCTOR and MEMORY HELP, over
//! the allocator figures of [`crate::memory`]; MEMORY USAGE over the size estimates of
//! [`herald_store::usage`].

use bytes::Bytes;

use super::{
    flag, parse_i64, reply_help, with_db, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR,
};
use crate::memory::{ratio, MemoryReport};
use crate::session::{Flow, Output, Session};

const MEMORY_SUB: CommandSpec = CommandSpec {
    flags: flag::LOADING | flag::STALE,
    acl_categories: &["@slow"],
    since: "4.0.0",
    ..BASE
};

/// `MEMORY <subcommand>`
pub const MEMORY: CommandSpec = CommandSpec {
    name: "memory",
    full_name: "memory",
    arity: -2,
    since: "4.0.0",
    summary: "A container for memory diagnostics commands.",
    complexity: "Depends on subcommand.",
    acl_categories: &["@slow"],
    subcommands: &[
        CommandSpec {
            name: "stats",
            full_name: "memory|stats",
            arity: 2,
            summary: "Returns details about memory usage.",
            handler: Some(stats),
            ..MEMORY_SUB
        },
        CommandSpec {
            name: "usage",
            full_name: "memory|usage",
            arity: -3,
            flags: flag::READONLY,
            summary: "Estimates the memory usage of a key.",
            complexity: "O(N) where N is the number of samples.",
            handler: Some(usage),
            ..MEMORY_SUB
        },
        CommandSpec {
            name: "purge",
            full_name: "memory|purge",
            arity: 2,
            summary: "Asks the allocator to release memory.",
            complexity: "Depends on how much memory is allocated, could be slow",
            handler: Some(|_, out, _| {
                match crate::memory::purge() {
                    Ok(_) => out.ok(),
                    Err(err) => out.error(&format!("ERR Error purging dirty pages: {err}")),
                }
                Flow::Continue
            }),
            ..MEMORY_SUB
        },
        CommandSpec {
            name: "malloc-stats",
            full_name: "memory|malloc-stats",
            arity: 2,
            summary: "Returns the allocator statistics.",
            complexity: "Depends on how much memory is allocated, could be slow",
            handler: Some(|_, out, _| {
                out.reply()
                    .verbatim(b"txt", crate::memory::allocator_report().as_bytes());
                Flow::Continue
            }),
            ..MEMORY_SUB
        },
        CommandSpec {
            name: "doctor",
            full_name: "memory|doctor",
            arity: 2,
            summary: "Outputs a memory problems report.",
            handler: Some(|_, out, _| {
                out.reply()
                    .verbatim(b"txt", doctor(&crate::memory::report()).as_bytes());
                Flow::Continue
            }),
            ..MEMORY_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "memory|help",
            arity: 2,
            summary: "Returns helpful text about the different subcommands.",
            handler: Some(|_, out, _| {
                reply_help(
                    out,
                    "memory",
                    &[
                        "DOCTOR",
                        "    Return memory problems reports.",
                        "MALLOC-STATS",
                        "    Return internal statistics report from the memory allocator.",
                        "PURGE",
                        "    Attempt to purge dirty pages for reclamation by the allocator.",
                        "STATS",
                        "    Return information about the memory usage of the server.",
                        "USAGE <key> [SAMPLES <count>]",
                        "    Return memory in bytes used by <key> and its value. Nested values are",
                        "    sampled up to <count> times (default: 5, 0 means sample all).",
                    ],
                );
                Flow::Continue
            }),
            ..MEMORY_SUB
        },
    ],
    ..BASE
};

/// Elements of a hash MEMORY USAGE looks at by default (Redis's
/// `OBJ_COMPUTE_SIZE_DEF_SAMPLES`).
const USAGE_DEFAULT_SAMPLES: usize = 5;

/// `MEMORY USAGE key [SAMPLES count]`: bytes, or nil for a missing key.
fn usage(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut samples = USAGE_DEFAULT_SAMPLES;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let Some(count) = options
            .next()
            .filter(|_| option.eq_ignore_ascii_case(b"samples"))
        else {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        };
        match parse_i64(count) {
            None => {
                out.error(NOT_AN_INTEGER);
                return Flow::Continue;
            }
            Some(count) if count < 0 => {
                out.error(SYNTAX_ERROR);
                return Flow::Continue;
            }
            // 0 looks at every element, as Redis's does.
            Some(count) => samples = usize::try_from(count).unwrap_or(usize::MAX),
        }
    }
    let bytes = with_db(session, out, |db, now| {
        Ok(db.memory_usage(&args[2], now, samples))
    });
    match bytes {
        Some(Some(bytes)) => out
            .reply()
            .integer(i64::try_from(bytes).unwrap_or(i64::MAX)),
        Some(None) => out.reply().null(),
        None => {}
    }
    Flow::Continue
}

/// One MEMORY STATS value.
enum Stat {
    Bytes(u64),
    Ratio(f64),
}

/// The fields of MEMORY STATS this server can tell truthfully, under Redis's names
/// (replication, Lua and cluster ones do not apply and are left out).
fn stat_fields(report: &MemoryReport, startup: u64, keys: u64) -> Vec<(&'static str, Stat)> {
    let dataset = report.used.saturating_sub(startup);
    let mut fields = vec![
        ("peak.allocated", Stat::Bytes(report.peak)),
        ("total.allocated", Stat::Bytes(report.used)),
        ("startup.allocated", Stat::Bytes(startup)),
        ("keys.count", Stat::Bytes(keys)),
        (
            "keys.bytes-per-key",
            Stat::Bytes(dataset.checked_div(keys).unwrap_or(0)),
        ),
        ("dataset.bytes", Stat::Bytes(dataset)),
        (
            "peak.percentage",
            Stat::Ratio(100.0 * ratio(report.used, report.peak)),
        ),
    ];
    if let Some(stats) = report.allocator {
        fields.extend([
            ("allocator.allocated", Stat::Bytes(stats.allocated)),
            ("allocator.active", Stat::Bytes(stats.active)),
            ("allocator.resident", Stat::Bytes(stats.resident)),
            (
                "allocator-fragmentation.ratio",
                Stat::Ratio(ratio(stats.active, stats.allocated)),
            ),
            (
                "allocator-fragmentation.bytes",
                Stat::Bytes(stats.active.saturating_sub(stats.allocated)),
            ),
            (
                "allocator.rss-ratio",
                Stat::Ratio(ratio(stats.resident, stats.active)),
            ),
            (
                "allocator.rss-bytes",
                Stat::Bytes(stats.resident.saturating_sub(stats.active)),
            ),
            (
                "rss-overhead.ratio",
                Stat::Ratio(ratio(report.rss, stats.resident)),
            ),
            (
                "rss-overhead.bytes",
                Stat::Bytes(report.rss.saturating_sub(stats.resident)),
            ),
        ]);
    }
    fields.extend([
        ("fragmentation", Stat::Ratio(report.fragmentation_ratio())),
        (
            "fragmentation.bytes",
            Stat::Bytes(report.rss.saturating_sub(report.used)),
        ),
    ]);
    fields
}

fn stats(session: &mut Session, out: &mut Output<'_>, _: &[bytes::Bytes]) -> Flow {
    let keys = session
        .shared
        .store
        .with(|keyspace| keyspace.dbs().iter().map(|db| db.len() as u64).sum::<u64>());
    let report = crate::memory::report();
    let fields = stat_fields(&report, session.shared.startup_used_memory, keys);
    let mut reply = out.reply();
    reply.map(fields.len());
    for (name, value) in fields {
        reply.bulk(name.as_bytes());
        match value {
            Stat::Bytes(bytes) => reply.integer(i64::try_from(bytes).unwrap_or(i64::MAX)),
            Stat::Ratio(value) => reply.double(value),
        }
    }
    Flow::Continue
}

/// MEMORY DOCTOR's text: the conditions Redis's doctor reports that this server can see.
fn doctor(report: &MemoryReport) -> String {
    const SMALL: u64 = 5 << 20;
    let mut problems = Vec::new();
    if report.used < SMALL {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.".to_owned();
    }
    if report.peak > report.used.saturating_mul(3) / 2 {
        problems.push(format!(
            " * Peak memory: In the past this instance used more than 150% the memory that is currently using ({} peak against {} now). The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak; MEMORY PURGE may give some of it back.",
            report.peak, report.used
        ));
    }
    if report.fragmentation_ratio() > 1.4 {
        problems.push(format!(
            " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the process is {:.2} times the memory in use). MEMORY PURGE returns unused dirty pages to the OS; allocation patterns or a past peak explain the rest.",
            report.fragmentation_ratio()
        ));
    }
    if problems.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.".to_owned();
    }
    format!(
        "Sam, I detected a few issues in this Herald instance memory implants:\n\n{}\n\nI'm here to keep you safe, Sam. I want to help you.\n",
        problems.join("\n\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::AllocatorStats;

    fn report(used: u64, peak: u64, rss: u64) -> MemoryReport {
        MemoryReport {
            used,
            peak,
            rss,
            allocator: Some(AllocatorStats {
                allocated: used,
                active: used + used / 10,
                resident: rss - rss / 20,
                mapped: rss * 2,
                retained: 0,
            }),
            allocator_name: "jemalloc-test".to_owned(),
        }
    }

    fn bytes(fields: &[(&str, Stat)], name: &str) -> u64 {
        match fields.iter().find(|(field, _)| *field == name) {
            Some((_, Stat::Bytes(value))) => *value,
            _ => panic!("no byte field {name}"),
        }
    }

    fn ratio_of(fields: &[(&str, Stat)], name: &str) -> f64 {
        match fields.iter().find(|(field, _)| *field == name) {
            Some((_, Stat::Ratio(value))) => *value,
            _ => panic!("no ratio field {name}"),
        }
    }

    #[test]
    fn stats_derive_the_dataset_and_the_ratios_from_the_report() {
        let fields = stat_fields(&report(11_000_000, 20_000_000, 16_500_000), 1_000_000, 1000);
        assert_eq!(bytes(&fields, "total.allocated"), 11_000_000);
        assert_eq!(bytes(&fields, "dataset.bytes"), 10_000_000);
        assert_eq!(bytes(&fields, "keys.bytes-per-key"), 10_000);
        assert_eq!(bytes(&fields, "allocator-fragmentation.bytes"), 1_100_000);
        assert!((ratio_of(&fields, "fragmentation") - 1.5).abs() < 1e-9);
        assert!((ratio_of(&fields, "peak.percentage") - 55.0).abs() < 1e-9);
        assert_eq!(bytes(&fields, "fragmentation.bytes"), 5_500_000);
    }

    #[test]
    fn no_keys_and_no_allocator_stats_divide_by_nothing() {
        let plain = MemoryReport {
            allocator: None,
            ..report(8_000_000, 8_000_000, 8_000_000)
        };
        let fields = stat_fields(&plain, 9_000_000, 0);
        assert_eq!(bytes(&fields, "keys.bytes-per-key"), 0);
        assert_eq!(bytes(&fields, "dataset.bytes"), 0);
        assert!(fields
            .iter()
            .all(|(name, _)| !name.starts_with("allocator")));
    }

    #[test]
    fn the_doctor_names_a_past_peak_and_a_high_resident_set() {
        assert!(doctor(&report(1 << 20, 1 << 20, 1 << 20)).contains("empty"));
        assert!(doctor(&report(100 << 20, 100 << 20, 110 << 20)).contains("can't find any"));
        let text = doctor(&report(100 << 20, 400 << 20, 300 << 20));
        assert!(text.contains("Peak memory"), "{text}");
        assert!(text.contains("High total RSS"), "{text}");
    }
}
