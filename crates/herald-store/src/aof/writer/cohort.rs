//! Under `appendfsync always`: how long an fsync waits for the writes that are on
//! their way, so that they share it instead of each group paying for one.
//!
//! With N clients each sending a write as soon as the previous one is acknowledged, the
//! clients settle into cohorts: the writes that arrive while one fsync runs share the
//! next. Redis gets two cohorts of about N/2 for free, because its event loop reads
//! every ready client before it fsyncs. Herald's writer thread starts an fsync the moment
//! it finds anything pending, so when a cohort's writes trickle in (their replies went
//! out one by one, and so do the next requests), the first few get an fsync of their
//! own and the rest wait a whole fsync more: measured with 50 clients, 15-17 writes per
//! fsync against Redis's 27.
//!
//! So before an fsync the thread waits, briefly, for the cohort it expects: as many
//! writes as the batch before last (in a closed loop, the clients that fsync released,
//! now coming back). It stops waiting as soon as they are in, when writes stop arriving
//! for [`Gathering::quiet`] (the cohort is smaller this time), or after
//! [`Gathering::patience`] (a fraction of the last fsync, so waiting never costs more
//! than a part of what it saves). A lone client expects a cohort of one: it never waits.
//!
//! This module owns the estimate and its limits; the writer thread does the waiting.

use std::time::Duration;

/// The limits of the wait before an fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gathering {
    /// No write for this long ends the wait: the cohort is in.
    pub quiet: Duration,
    /// The wait is at most this share of the last fsync's duration, in percent...
    pub patience_percent: u32,
    /// ...and never shorter or longer than these.
    pub patience_floor: Duration,
    pub patience_ceiling: Duration,
}

impl Default for Gathering {
    /// The production limits: the quiet gap is a few request round trips on loopback,
    /// the patience a share of the fsync the wait is meant to save.
    fn default() -> Self {
        Gathering {
            quiet: Duration::from_micros(30),
            patience_percent: 50,
            patience_floor: Duration::ZERO,
            patience_ceiling: Duration::from_millis(1),
        }
    }
}

/// What the last fsyncs tell about the next one, and how long it may wait.
#[derive(Debug, Default)]
pub(super) struct Cohorts {
    /// Writes in the batch before last and in the last one.
    batches: [u64; 2],
    last_fsync: Duration,
    /// The wait's limits.
    pub(super) limits: Gathering,
}

impl Cohorts {
    /// Within `limits`, as if the last two batches had `writes` writes each.
    #[cfg(test)]
    pub(super) fn expecting(writes: u64, limits: Gathering) -> Self {
        Cohorts {
            batches: [writes; 2],
            last_fsync: Duration::ZERO,
            limits,
        }
    }

    /// A batch of `writes` was taken for the file.
    pub(super) fn taken(&mut self, writes: u64) {
        if writes > 0 {
            self.batches = [self.batches[1], writes];
        }
    }

    /// An fsync took `duration`.
    pub(super) fn synced(&mut self, duration: Duration) {
        self.last_fsync = duration;
    }

    /// Writes the next fsync should wait for: the cohort the batch before last released.
    pub(super) fn expected(&self) -> u64 {
        self.batches[0]
    }

    /// How long the next fsync may wait for them.
    pub(super) fn patience(&self) -> Duration {
        (self.last_fsync * self.limits.patience_percent / 100)
            .clamp(self.limits.patience_floor, self.limits.patience_ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_cohort_is_the_batch_before_last() {
        let mut cohorts = Cohorts::default();
        assert_eq!(cohorts.expected(), 0, "nothing to wait for at first");
        cohorts.taken(1);
        cohorts.taken(1);
        assert_eq!(cohorts.expected(), 1, "a lone client expects only itself");
        cohorts.taken(20);
        cohorts.taken(30);
        assert_eq!(cohorts.expected(), 20);
        cohorts.taken(0);
        assert_eq!(cohorts.expected(), 20, "an empty swap is not a batch");
    }

    #[test]
    fn patience_is_a_share_of_the_last_fsync_within_bounds() {
        let mut cohorts = Cohorts::default();
        assert_eq!(cohorts.patience(), Duration::ZERO);
        cohorts.synced(Duration::from_micros(400));
        assert_eq!(cohorts.patience(), Duration::from_micros(200));
        cohorts.synced(Duration::from_millis(30));
        assert_eq!(cohorts.patience(), Duration::from_millis(1));
    }
}
