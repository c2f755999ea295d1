//! The INFO text: Redis's sections and field names, filled from Herald's counters.
//!
//! Fields clients and tools parse are kept with Redis's names and meaning
//! (`redis_version` reports the Redis version whose behaviour Herald matches);
//! Herald's own figures carry a `herald_` prefix.

use std::fmt::Write as _;

use crate::server::{unix_time_micros, Shared};
use crate::stats::ServerStats;

/// Sections in the order INFO prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cluster",
    "keyspace",
];

/// INFO keyspace field names, one per database.
const DB_NAMES: [&str; herald_store::DATABASES] = [
    "db0", "db1", "db2", "db3", "db4", "db5", "db6", "db7", "db8", "db9", "db10", "db11", "db12",
    "db13", "db14", "db15",
];

/// Which sections a request asks for (`INFO`, `INFO default|all|everything`, `INFO a b`).
pub fn selected_sections(args: &[&str]) -> Vec<&'static str> {
    if args.is_empty() {
        return SECTIONS.to_vec();
    }
    let wanted: Vec<String> = args.iter().map(|arg| arg.to_ascii_lowercase()).collect();
    if wanted
        .iter()
        .any(|w| w == "all" || w == "everything" || w == "default")
    {
        return SECTIONS.to_vec();
    }
    SECTIONS
        .iter()
        .copied()
        .filter(|section| wanted.iter().any(|w| w == section))
        .collect()
}

/// INFO memory, in Redis's names: `used_memory` is what the allocator says the program
/// holds (the resident set when no allocator control is installed).
fn memory_fields(report: &crate::memory::MemoryReport) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("used_memory", report.used.to_string()),
        ("used_memory_human", human_bytes(report.used)),
        ("used_memory_rss", report.rss.to_string()),
        ("used_memory_rss_human", human_bytes(report.rss)),
        ("used_memory_peak", report.peak.to_string()),
        ("used_memory_peak_human", human_bytes(report.peak)),
    ];
    if let Some(stats) = report.allocator {
        fields.extend([
            ("allocator_allocated", stats.allocated.to_string()),
            ("allocator_active", stats.active.to_string()),
            ("allocator_resident", stats.resident.to_string()),
            ("allocator_mapped", stats.mapped.to_string()),
            ("allocator_retained", stats.retained.to_string()),
        ]);
    }
    fields.extend([
        (
            "mem_fragmentation_ratio",
            format!("{:.2}", report.fragmentation_ratio()),
        ),
        ("mem_allocator", report.allocator_name.clone()),
        ("maxmemory", "0".to_owned()),
        ("maxmemory_human", "0B".to_owned()),
        ("maxmemory_policy", "noeviction".to_owned()),
    ]);
    fields
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

/// Renders the requested sections.
pub fn render(shared: &Shared, sections: &[&str]) -> String {
    let mut text = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        let fields = fields(shared, section);
        let mut title = section.to_string();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let _ = write!(text, "# {title}\r\n");
        for (name, value) in fields {
            let _ = write!(text, "{name}:{value}\r\n");
        }
    }
    text
}

fn fields(shared: &Shared, section: &str) -> Vec<(&'static str, String)> {
    let stats = &shared.stats;
    let get = ServerStats::get;
    match section {
        "server" => {
            let uptime = shared.uptime().as_secs();
            vec![
                ("redis_version", crate::REDIS_VERSION.to_owned()),
                ("herald_version", env!("CARGO_PKG_VERSION").to_owned()),
                ("redis_mode", "standalone".to_owned()),
                (
                    "os",
                    format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
                ),
                ("arch_bits", (usize::BITS).to_string()),
                ("multiplexing_api", "tokio".to_owned()),
                (
                    "herald_worker_threads",
                    tokio::runtime::Handle::try_current()
                        .map(|runtime| runtime.metrics().num_workers())
                        .unwrap_or(0)
                        .to_string(),
                ),
                ("process_id", std::process::id().to_string()),
                ("run_id", shared.run_id.clone()),
                ("tcp_port", shared.port.to_string()),
                ("server_time_usec", unix_time_micros().to_string()),
                ("uptime_in_seconds", uptime.to_string()),
                ("uptime_in_days", (uptime / 86_400).to_string()),
                ("hz", crate::config::DEFAULT_HZ.to_string()),
                (
                    "executable",
                    std::env::current_exe()
                        .map(|path| path.display().to_string())
                        .unwrap_or_default(),
                ),
            ]
        }
        "clients" => {
            let clients = shared.clients.snapshot();
            let pubsub = clients.iter().filter(|client| client.is_pubsub()).count();
            let biggest_output = clients
                .iter()
                .map(|client| client.outbox.queued_bytes())
                .max()
                .unwrap_or(0);
            vec![
                ("connected_clients", clients.len().to_string()),
                ("maxclients", shared.config.maxclients().to_string()),
                (
                    "client_recent_max_output_buffer",
                    biggest_output.to_string(),
                ),
                (
                    "blocked_clients",
                    shared
                        .store
                        .with(|keyspace| keyspace.blocked_clients())
                        .to_string(),
                ),
                ("pubsub_clients", pubsub.to_string()),
            ]
        }
        "memory" => memory_fields(&crate::memory::report()),
        "persistence" => crate::command::persistence::info_fields(shared),
        "stats" => {
            let engine = shared.engine.stats();
            vec![
                (
                    "total_connections_received",
                    get(&stats.connections_received).to_string(),
                ),
                (
                    "total_commands_processed",
                    stats.commands_processed.get().to_string(),
                ),
                (
                    "total_net_input_bytes",
                    stats.net_input_bytes.get().to_string(),
                ),
                (
                    "total_net_output_bytes",
                    stats.net_output_bytes.get().to_string(),
                ),
                (
                    "rejected_connections",
                    get(&stats.rejected_connections).to_string(),
                ),
                (
                    "expired_keys",
                    shared
                        .store
                        .with(|keyspace| keyspace.expired_keys())
                        .to_string(),
                ),
                ("pubsub_channels", engine.channels.to_string()),
                ("pubsub_patterns", engine.patterns.to_string()),
                ("pubsub_shardchannels", engine.shard_channels.to_string()),
                (
                    "client_query_buffer_limit_disconnections",
                    get(&stats.query_limit_disconnections).to_string(),
                ),
                (
                    "client_output_buffer_limit_disconnections",
                    get(&stats.output_limit_disconnections).to_string(),
                ),
                (
                    "herald_messages_published",
                    engine.messages_published.to_string(),
                ),
                ("herald_messages_delivered", engine.deliveries.to_string()),
                (
                    "herald_protocol_errors",
                    get(&stats.protocol_errors).to_string(),
                ),
                (
                    "herald_io_uring_submissions",
                    get(&stats.uring_submissions).to_string(),
                ),
                ("herald_io_uring_sends", get(&stats.uring_sends).to_string()),
                (
                    "herald_held_publish_batches",
                    get(&stats.held_publish_batches).to_string(),
                ),
                (
                    "herald_held_publish_timeouts",
                    get(&stats.held_publish_timeouts).to_string(),
                ),
            ]
        }
        "replication" => vec![
            ("role", "master".to_owned()),
            ("connected_slaves", "0".to_owned()),
        ],
        "cluster" => vec![("cluster_enabled", "0".to_owned())],
        "keyspace" => shared.store.with(|keyspace| {
            keyspace
                .dbs()
                .iter()
                .enumerate()
                .filter(|(_, db)| !db.is_empty())
                .map(|(index, db)| {
                    (
                        DB_NAMES.get(index).copied().unwrap_or("db?"),
                        format!("keys={},expires={},avg_ttl=0", db.len(), db.volatile_len()),
                    )
                })
                .collect()
        }),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_selection() {
        assert_eq!(selected_sections(&[]).len(), SECTIONS.len());
        assert_eq!(selected_sections(&["ALL"]).len(), SECTIONS.len());
        assert_eq!(
            selected_sections(&["clients", "server"]),
            vec!["server", "clients"]
        );
        assert!(selected_sections(&["nonsense"]).is_empty());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(2048), "2.00K");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00M");
    }
}
