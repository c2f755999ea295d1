//! Server CPU time over a run's measured window, read from `/proc/<pid>/stat`.
//!
//! `--pid` (for `--addr`) and `--compare-pid` (for `--compare`) name the server
//! processes; [`begin`] and [`end`] bracket the part of a scenario that is timed (after
//! every subscription is confirmed, until the last message arrives), so setup such as
//! PSUBSCRIBE of 100 000 patterns is not counted. The result is user + system time of
//! all the server's threads, at the kernel's USER_HZ resolution (10 ms): meaningful for
//! runs of a second or more. Only Linux has `/proc`; elsewhere nothing is measured.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `/proc/<pid>/stat` counts in USER_HZ ticks, 100 per second on every Linux ABI.
const TICKS_PER_SECOND: u64 = 100;

/// The PID of the server the current run loads; 0 for none.
static TARGET: AtomicU32 = AtomicU32::new(0);
/// CPU time at [`begin`], and the window measured by [`end`].
static WINDOW: Mutex<Window> = Mutex::new((None, None));

type Window = (Option<Duration>, Option<Duration>);

fn window() -> MutexGuard<'static, Window> {
    // Two plain values: a panic elsewhere cannot leave them half-written.
    WINDOW
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets the process whose CPU the next run measures (`None`: measure nothing).
pub fn target(pid: Option<u32>) {
    TARGET.store(pid.unwrap_or(0), Ordering::Relaxed);
    *window() = (None, None);
}

/// User + system CPU time of `pid` so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields
    // from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

fn sample() -> Option<Duration> {
    match TARGET.load(Ordering::Relaxed) {
        0 => None,
        pid => process_cpu(pid),
    }
}

/// Marks the start of the measured window.
pub fn begin() {
    *window() = (sample(), None);
}

/// Marks its end.
pub fn end() {
    let mut window = window();
    window.1 = match (window.0, sample()) {
        (Some(start), Some(stop)) => Some(stop.saturating_sub(start)),
        _ => None,
    };
}

/// The CPU time measured between [`begin`] and [`end`] of the last run, if any.
pub fn measured() -> Option<Duration> {
    window().1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let stat = "4242 (herald (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 77 0 0 20 0 3";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(2000)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu(std::process::id()).is_some());
    }
}
