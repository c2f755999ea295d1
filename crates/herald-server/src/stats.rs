//! Server-wide counters (INFO stats, and what the gateway's /metrics shows of the RESP
//! side). Relaxed atomics: they are statistics, not synchronisation. The four bumped on
//! every read, batch or write are [`ShardedCounter`]s, so two cores never write the
//! same cache line for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use foldhash::fast::FixedState;
use herald_engine::counter::ShardedCounter;

use crate::command::COMMANDS;

/// Counters since start.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused because `maxclients` was reached.
    pub rejected_connections: AtomicU64,
    /// Commands executed (including rejected ones, as Redis counts calls).
    pub commands_processed: ShardedCounter,
    /// Bytes read from clients.
    pub net_input_bytes: ShardedCounter,
    /// Bytes written to clients.
    pub net_output_bytes: ShardedCounter,
    /// Clients disconnected for exceeding an output-buffer limit (slow consumers).
    pub output_limit_disconnections: AtomicU64,
    /// Clients disconnected for exceeding the query-buffer limit.
    pub query_limit_disconnections: AtomicU64,
    /// Connections closed after a protocol error.
    pub protocol_errors: AtomicU64,
    /// Messages written to subscribers (one per delivery, as PUBLISH counts receivers).
    pub deliveries_written: ShardedCounter,
    /// io_uring submissions of direct writes (one `io_uring_enter` each; feature
    /// `io-uring`, else always 0).
    pub uring_submissions: AtomicU64,
    /// Socket sends made through those submissions.
    pub uring_sends: AtomicU64,
    /// Batches of a busy publisher whose deliveries were held for its next request
    /// (`crate::cork`).
    pub held_publish_batches: AtomicU64,
    /// Of those, the ones no next request released: written when the wait ran out.
    pub held_publish_timeouts: AtomicU64,
    /// Calls per command, for metrics.
    pub commands: CommandCounts,
}

impl ServerStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Label under which requests naming no known command are counted.
pub const UNKNOWN_COMMAND: &str = "unknown";

/// Index of every top-level command name in [`CommandCounts`]; the last slot is
/// [`UNKNOWN_COMMAND`]. Built from the command table, so the label set is bounded by it.
static COMMAND_SLOTS: LazyLock<HashMap<&'static str, usize, FixedState>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .enumerate()
        .map(|(slot, spec)| (spec.name, slot))
        .collect()
});

/// Calls per top-level command (subcommands count under their container: `client`),
/// with a fixed slot per entry of the command table and one for unknown names.
#[derive(Debug)]
pub struct CommandCounts {
    calls: Vec<AtomicU64>,
}

impl Default for CommandCounts {
    fn default() -> Self {
        CommandCounts {
            calls: (0..=COMMANDS.len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl CommandCounts {
    /// Counts one call of the command whose full name is `full_name` (`client|list`);
    /// names outside the table (`NULL` for unknown commands) count as [`UNKNOWN_COMMAND`].
    pub fn count(&self, full_name: &str) {
        self.count_calls(full_name, 1);
    }

    /// Counts `calls` calls of `full_name` at once (see [`Self::count`]).
    pub fn count_calls(&self, full_name: &str, calls: u64) {
        let top = full_name.split_once('|').map_or(full_name, |(top, _)| top);
        let slot = COMMAND_SLOTS.get(top).copied().unwrap_or(COMMANDS.len());
        if let Some(counter) = self.calls.get(slot) {
            counter.fetch_add(calls, Ordering::Relaxed);
        }
    }

    /// Every command called at least once, with its calls, in command-table order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        COMMANDS
            .iter()
            .map(|spec| spec.name)
            .chain(std::iter::once(UNKNOWN_COMMAND))
            .zip(&self.calls)
            .map(|(name, calls)| (name, calls.load(Ordering::Relaxed)))
            .filter(|&(_, calls)| calls > 0)
            .collect()
    }

    /// Forgets every count (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for calls in &self.calls {
            calls.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_count_under_their_container_and_unknown_names_share_one_label() {
        let counts = CommandCounts::default();
        counts.count("publish");
        counts.count("publish");
        counts.count("client|list");
        counts.count("NULL");
        counts.count("no-such-command");
        let snapshot = counts.snapshot();
        assert!(snapshot.contains(&("publish", 2)));
        assert!(snapshot.contains(&("client", 1)));
        assert!(snapshot.contains(&(UNKNOWN_COMMAND, 2)));
        assert_eq!(snapshot.len(), 3);
        counts.reset();
        assert!(counts.snapshot().is_empty());
    }
}
