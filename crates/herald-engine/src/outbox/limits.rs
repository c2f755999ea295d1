//! Output-buffer limits, as Redis's `client-output-buffer-limit`: the client classes,
//! their hard and soft limits (shared by every outbox and changed at run time by CONFIG
//! SET), why an outbox closed, and the check every append and the periodic sweep make.
//!
//! This module decides when a client is too slow; killing it and dropping its queue is
//! the queue's business ([`Outbox::kill`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Outbox, State};

/// Which output limit applies, as Redis's `client-output-buffer-limit` classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    /// A client with no subscriptions.
    Normal = 0,
    /// A client with at least one subscription of any kind.
    Pubsub = 1,
    /// A client in MONITOR mode, which Redis treats as a replica in every other respect
    /// (it limits a monitor's output as a normal client's, by default not at all).
    Replica = 2,
}

/// One class's limit. Zero disables the corresponding check, as in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Queued bytes above which the client is disconnected at once.
    pub hard_bytes: u64,
    /// Queued bytes above which, for longer than `soft_seconds`, the client is disconnected.
    pub soft_bytes: u64,
    /// How long the soft limit may be exceeded, in seconds.
    pub soft_seconds: u64,
}

/// Redis default for the pubsub class: 32 MB hard limit.
pub const PUBSUB_HARD_LIMIT_BYTES: u64 = 32 * 1024 * 1024;
/// Redis default for the pubsub class: 8 MB soft limit ...
pub const PUBSUB_SOFT_LIMIT_BYTES: u64 = 8 * 1024 * 1024;
/// ... held for 60 seconds.
pub const PUBSUB_SOFT_LIMIT_SECONDS: u64 = 60;
/// Redis default for the replica class: `256mb 64mb 60`.
pub const REPLICA_LIMIT: OutputLimit = OutputLimit {
    hard_bytes: 256 * 1024 * 1024,
    soft_bytes: 64 * 1024 * 1024,
    soft_seconds: 60,
};

/// The limits of every class, shared by all outboxes and changeable at run time
/// (CONFIG SET client-output-buffer-limit). Atomics, because every append reads them.
#[derive(Debug)]
pub struct OutputLimits {
    values: [[AtomicU64; 3]; 3],
}

impl Default for OutputLimits {
    /// Redis defaults: `normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        let limits = OutputLimits {
            values: Default::default(),
        };
        limits.set(
            ClientClass::Pubsub,
            OutputLimit {
                hard_bytes: PUBSUB_HARD_LIMIT_BYTES,
                soft_bytes: PUBSUB_SOFT_LIMIT_BYTES,
                soft_seconds: PUBSUB_SOFT_LIMIT_SECONDS,
            },
        );
        limits.set(ClientClass::Replica, REPLICA_LIMIT);
        limits
    }
}

impl OutputLimits {
    /// The current limit of `class`.
    pub fn get(&self, class: ClientClass) -> OutputLimit {
        let [hard, soft, seconds] = &self.values[class as usize];
        OutputLimit {
            hard_bytes: hard.load(Ordering::Relaxed),
            soft_bytes: soft.load(Ordering::Relaxed),
            soft_seconds: seconds.load(Ordering::Relaxed),
        }
    }

    /// Replaces the limit of `class`; applies to the next append of every client.
    pub fn set(&self, class: ClientClass, limit: OutputLimit) {
        let [hard, soft, seconds] = &self.values[class as usize];
        hard.store(limit.hard_bytes, Ordering::Relaxed);
        soft.store(limit.soft_bytes, Ordering::Relaxed);
        seconds.store(limit.soft_seconds, Ordering::Relaxed);
    }
}

/// Why an outbox was closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Queued output passed the class's hard limit.
    HardLimit {
        /// Bytes queued when the limit was hit.
        queued_bytes: usize,
        /// The limit in force.
        limit: OutputLimit,
        /// The class whose limit applied.
        class: ClientClass,
    },
    /// Queued output stayed above the soft limit for longer than allowed.
    SoftLimit {
        /// Bytes queued when the limit was enforced.
        queued_bytes: usize,
        /// The limit in force.
        limit: OutputLimit,
        /// The class whose limit applied.
        class: ClientClass,
    },
    /// Killed by an operator (CLIENT KILL) or by server shutdown.
    Killed,
    /// Closed in an orderly way once the queue is flushed (QUIT, protocol error).
    AfterFlush,
}

impl CloseReason {
    /// True for the slow-consumer reasons (output limits).
    pub fn is_output_limit(&self) -> bool {
        matches!(
            self,
            CloseReason::HardLimit { .. } | CloseReason::SoftLimit { .. }
        )
    }
}

impl Outbox {
    /// Applies the soft limit's time window at `now`; the server calls this
    /// periodically so that a client nobody publishes to any more is still caught.
    /// Returns the reason when this call killed the client.
    pub fn enforce_limits(&self, now: Instant) -> Option<CloseReason> {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return None;
        }
        let verdict = self.check_limits(&mut state, || now);
        drop(state);
        if let Some(reason) = &verdict {
            self.kill_now(reason.clone());
        }
        verdict
    }

    /// `now` is called only when the soft limit is exceeded: reading the clock on every
    /// append would cost more than the append itself.
    pub(super) fn check_limits(
        &self,
        state: &mut State,
        now: impl FnOnce() -> Instant,
    ) -> Option<CloseReason> {
        let class = self.class();
        let limit = self.limits.get(class);
        let queued = state.queued_bytes as u64;
        if limit.hard_bytes > 0 && queued >= limit.hard_bytes {
            return Some(CloseReason::HardLimit {
                queued_bytes: state.queued_bytes,
                limit,
                class,
            });
        }
        if limit.soft_bytes > 0 && queued >= limit.soft_bytes {
            let now = now();
            let since = *state.soft_exceeded_since.get_or_insert(now);
            if now.saturating_duration_since(since) > Duration::from_secs(limit.soft_seconds) {
                return Some(CloseReason::SoftLimit {
                    queued_bytes: state.queued_bytes,
                    limit,
                    class,
                });
            }
        } else {
            state.soft_exceeded_since = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::ClientId;
    use crate::outbox::tests::{delivery, drain, outbox_with};
    use crate::outbox::OutboxBatch;

    #[test]
    fn defaults_are_redis_defaults() {
        let limits = OutputLimits::default();
        assert_eq!(limits.get(ClientClass::Normal), OutputLimit::default());
        let pubsub = limits.get(ClientClass::Pubsub);
        assert_eq!(pubsub.hard_bytes, 32 * 1024 * 1024);
        assert_eq!(pubsub.soft_bytes, 8 * 1024 * 1024);
        assert_eq!(pubsub.soft_seconds, 60);
    }

    #[test]
    fn hard_limit_kills_and_frees_memory() {
        let limit = OutputLimit {
            hard_bytes: 200,
            soft_bytes: 0,
            soft_seconds: 0,
        };
        let outbox = outbox_with(ClientClass::Pubsub, limit);
        let mut accepted = 0;
        while outbox.deliver(delivery(b"0123456789")) {
            accepted += 1;
            assert!(accepted < 100, "the hard limit never fired");
        }
        assert!(outbox.is_killed());
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(matches!(
            outbox.close_reason(),
            Some(CloseReason::HardLimit { .. })
        ));
        let mut out = Vec::new();
        assert_eq!(outbox.take_batch(&mut out, usize::MAX), OutboxBatch::Killed);
    }

    #[test]
    fn normal_class_is_unlimited_by_default() {
        let outbox = Outbox::new(ClientId(7), Arc::new(OutputLimits::default()));
        for _ in 0..10_000 {
            assert!(outbox.deliver(delivery(b"0123456789")));
        }
        assert!(!outbox.is_killed());
    }

    #[test]
    fn soft_limit_needs_its_time_window() {
        let limit = OutputLimit {
            hard_bytes: 0,
            soft_bytes: 100,
            soft_seconds: 60,
        };
        let outbox = outbox_with(ClientClass::Pubsub, limit);
        for _ in 0..5 {
            outbox.deliver(delivery(b"0123456789"));
        }
        let now = Instant::now();
        assert_eq!(outbox.enforce_limits(now), None);
        assert_eq!(outbox.enforce_limits(now + Duration::from_secs(30)), None);
        let reason = outbox.enforce_limits(now + Duration::from_secs(61));
        assert!(matches!(reason, Some(CloseReason::SoftLimit { .. })));
        assert!(outbox.is_killed());
    }

    #[test]
    fn soft_window_resets_when_the_client_catches_up() {
        // Appends check limits against the real clock; to drive the window with a fake
        // clock only, the soft limit is switched off while appending.
        let soft = OutputLimit {
            hard_bytes: 0,
            soft_bytes: 100,
            soft_seconds: 60,
        };
        let limits = Arc::new(OutputLimits::default());
        let outbox = Outbox::new(ClientId(1), Arc::clone(&limits));
        outbox.set_class(ClientClass::Pubsub);
        let fill = |outbox: &Outbox| {
            limits.set(ClientClass::Pubsub, OutputLimit::default());
            for _ in 0..5 {
                outbox.deliver(delivery(b"0123456789"));
            }
            limits.set(ClientClass::Pubsub, soft);
        };
        let start = Instant::now();
        fill(&outbox);
        assert_eq!(outbox.enforce_limits(start), None);
        drain(&outbox);
        // Caught up: the window closes.
        assert_eq!(outbox.enforce_limits(start + Duration::from_secs(59)), None);
        fill(&outbox);
        // Behind again: a new window opens at this check, not at `start`.
        let reopened = start + Duration::from_secs(61);
        assert_eq!(outbox.enforce_limits(reopened), None);
        assert!(!outbox.is_killed());
        let reason = outbox.enforce_limits(reopened + Duration::from_secs(61));
        assert!(matches!(reason, Some(CloseReason::SoftLimit { .. })));
    }
}
