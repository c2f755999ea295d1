//! The binary's allocator: jemalloc, as Redis's, with its background thread on (Redis's
//! `jemalloc-bg-thread yes`), so pages freed after a peak go back to the OS within
//! seconds even while the server is idle; glibc's malloc kept them for good (all
//! 250 MB after deleting every key of a 100 000-key load, against 30 MB here).
//! [`JemallocControl`] gives `herald-server` the allocator's figures (INFO memory,
//! MEMORY STATS) and its purge (MEMORY PURGE, synchronous FLUSHALL).
//!
//! Only safe `tikv-jemalloc-ctl` calls: a purge sets every arena's dirty decay to zero
//! (which makes jemalloc purge at once) and puts it back.

use herald_server::memory::{AllocatorControl, AllocatorStats};
use tikv_jemalloc_ctl::{arenas, epoch, stats, stats_print, version, Access, AsName};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Installs [`JemallocControl`] for the server's memory figures.
pub fn install() {
    match version::read() {
        Ok(release) => {
            let name = format!("jemalloc-{}", release.split('-').next().unwrap_or(release));
            herald_server::memory::install(Box::new(JemallocControl { name }));
        }
        Err(err) => {
            tracing::warn!(%err, "jemalloc does not answer; memory figures fall back to the resident set")
        }
    }
}

/// jemalloc through its `mallctl` namespace.
struct JemallocControl {
    name: String,
}

impl AllocatorControl for JemallocControl {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> Result<AllocatorStats, String> {
        let text = |err: tikv_jemalloc_ctl::Error| err.to_string();
        // The statistics are a snapshot refreshed by advancing the epoch.
        epoch::advance().map_err(text)?;
        Ok(AllocatorStats {
            allocated: stats::allocated::read().map_err(text)? as u64,
            active: stats::active::read().map_err(text)? as u64,
            resident: stats::resident::read().map_err(text)? as u64,
            mapped: stats::mapped::read().map_err(text)? as u64,
            retained: stats::retained::read().map_err(text)? as u64,
        })
    }

    fn purge(&self) -> Result<(), String> {
        let count = arenas::narenas::read().map_err(|err| err.to_string())?;
        for arena in 0..count {
            let key = format!("arena.{arena}.dirty_decay_ms\0");
            let name = key.as_str().name();
            // Arenas no thread has used yet are not initialised: nothing to purge there.
            let Ok(previous) = Access::<isize>::update(name, 0) else {
                continue;
            };
            if let Err(err) = Access::<isize>::write(name, previous) {
                return Err(format!(
                    "arena {arena}: cannot restore dirty_decay_ms {previous}: {err}"
                ));
            }
        }
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let mut text = Vec::new();
        stats_print::stats_print(&mut text, stats_print::Options::default()).ok()?;
        Some(String::from_utf8_lossy(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_follow_an_allocation_and_a_purge_succeeds() {
        let control = JemallocControl {
            name: "jemalloc-test".to_owned(),
        };
        let before = match control.stats() {
            Ok(stats) => stats,
            Err(err) => panic!("jemalloc statistics: {err}"),
        };
        let block = vec![1u8; 64 << 20];
        let during = match control.stats() {
            Ok(stats) => stats,
            Err(err) => panic!("jemalloc statistics: {err}"),
        };
        assert!(
            during.allocated >= before.allocated + (60 << 20),
            "{before:?} -> {during:?}"
        );
        assert!(during.active >= during.allocated && during.mapped >= during.active);
        drop(block);
        assert_eq!(control.purge(), Ok(()));
        assert!(control
            .report()
            .is_some_and(|text| text.contains("jemalloc")));
    }
}
