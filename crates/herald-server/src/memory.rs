//! The process's memory as its allocator sees it: the figures INFO memory and MEMORY
//! STATS report, and MEMORY PURGE (also run after a synchronous FLUSHALL/FLUSHDB, as
//! Redis does) that hands freed pages back to the OS.
//!
//! Which allocator the process runs on is the binary's choice (a global allocator is
//! process-wide, so a library must not make it): the `herald` binary uses jemalloc, as
//! Redis does, and installs an [`AllocatorControl`] at start ([`install`]). Without one
//! (an embedder on the system allocator) the figures fall back to the resident set size
//! from `/proc/self/status` and purging is a no-op. This module never allocates on the
//! allocator's behalf and holds no lock: the peak is an atomic, the control a `OnceLock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// What the allocator reports, in bytes (jemalloc's `stats.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the program holds (`stats.allocated`): Redis's `used_memory`.
    pub allocated: u64,
    /// Bytes in pages the allocator has in use, `allocated` plus fragmentation inside them.
    pub active: u64,
    /// Bytes of the allocator's pages that are resident (dirty pages not yet purged count).
    pub resident: u64,
    /// Bytes mapped by the allocator.
    pub mapped: u64,
    /// Bytes of address space kept for reuse and not resident.
    pub retained: u64,
}

/// The binary's allocator, seen from the server.
pub trait AllocatorControl: Send + Sync + 'static {
    /// Name and version, for INFO's `mem_allocator` (`jemalloc-5.3.0`).
    fn name(&self) -> &str;
    /// Current figures; `Err` with the allocator's message when they cannot be read.
    fn stats(&self) -> Result<AllocatorStats, String>;
    /// Returns every unused dirty page to the OS now.
    fn purge(&self) -> Result<(), String>;
    /// The allocator's own full report (MEMORY MALLOC-STATS), when it has one.
    fn report(&self) -> Option<String>;
}

static CONTROL: OnceLock<Box<dyn AllocatorControl>> = OnceLock::new();
static PEAK_USED: AtomicU64 = AtomicU64::new(0);

/// Installs the process's allocator control; `false` (and `control` dropped) when one is
/// installed already. Call once, early in `main`.
pub fn install(control: Box<dyn AllocatorControl>) -> bool {
    CONTROL.set(control).is_ok()
}

/// One reading of the process's memory.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryReport {
    /// Bytes in use: the allocator's `allocated`, or the resident set without one.
    pub used: u64,
    /// The largest `used` seen since start (sampled by the cron and by every report).
    pub peak: u64,
    /// Resident set size of the process.
    pub rss: u64,
    /// The allocator's figures, when it reports them.
    pub allocator: Option<AllocatorStats>,
    /// `mem_allocator`: the control's name, or `libc` without one.
    pub allocator_name: String,
}

impl MemoryReport {
    /// Resident set over bytes in use (Redis's `mem_fragmentation_ratio`).
    pub fn fragmentation_ratio(&self) -> f64 {
        ratio(self.rss, self.used)
    }
}

/// `numerator / denominator`, 0 when there is nothing to divide by (an empty server).
pub fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    numerator as f64 / denominator as f64
}

/// Reads the figures now (and raises the peak).
pub fn report() -> MemoryReport {
    let rss = resident_memory_bytes();
    let control = CONTROL.get();
    let allocator = control.and_then(|control| match control.stats() {
        Ok(stats) => Some(stats),
        Err(err) => {
            tracing::debug!(%err, "cannot read the allocator's statistics");
            None
        }
    });
    let used = allocator.map_or(rss, |stats| stats.allocated);
    let peak = PEAK_USED.fetch_max(used, Ordering::Relaxed).max(used);
    MemoryReport {
        used,
        peak,
        rss,
        allocator,
        allocator_name: control.map_or_else(|| "libc".to_owned(), |c| c.name().to_owned()),
    }
}

/// Samples the bytes in use so that the peak sees what happens between reports (the
/// cron calls it every tick).
pub fn sample_peak() {
    if let Some(stats) = CONTROL.get().and_then(|control| control.stats().ok()) {
        PEAK_USED.fetch_max(stats.allocated, Ordering::Relaxed);
    }
}

/// Hands unused dirty pages back to the OS. `Ok(false)` when the allocator cannot
/// (no control installed), as Redis answers MEMORY PURGE on libc.
pub fn purge() -> Result<bool, String> {
    match CONTROL.get() {
        Some(control) => control.purge().map(|()| true),
        None => Ok(false),
    }
}

/// The allocator's own report, or a line saying there is none.
pub fn allocator_report() -> String {
    CONTROL
        .get()
        .and_then(|control| control.report())
        .unwrap_or_else(|| "Stats not supported for the current allocator".to_owned())
}

/// Resident set size of this process in bytes, from `/proc/self/status` (0 elsewhere).
pub fn resident_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_allocator_control_the_resident_set_is_what_is_used() {
        // No test in this crate installs a control: the fallback is what they see.
        let report = report();
        assert_eq!(report.allocator, None);
        assert_eq!(report.allocator_name, "libc");
        if cfg!(target_os = "linux") {
            assert!(report.rss > 0, "VmRSS is readable on Linux");
        }
        assert_eq!(report.used, report.rss);
        assert!(report.peak >= report.used);
        assert_eq!(purge(), Ok(false));
        assert!(allocator_report().contains("not supported"));
    }

    #[test]
    fn the_fragmentation_ratio_is_rss_over_used() {
        let report = MemoryReport {
            used: 1000,
            peak: 1000,
            rss: 1500,
            allocator: None,
            allocator_name: "libc".to_owned(),
        };
        assert!((report.fragmentation_ratio() - 1.5).abs() < 1e-9);
        let empty = MemoryReport { used: 0, ..report };
        assert_eq!(empty.fragmentation_ratio(), 0.0);
    }
}
