//! Corking: a connection that publishes at a steady rate, about as fast as its
//! subscribers' writes take, holds one short batch's deliveries until its next request
//! arrives (or [`CORK_MAX_WAIT`] passes), so each subscriber gets one send for two
//! messages instead of one for each.
//!
//! At 10 000 PUBLISH/s to 20 subscribers a server on this project's VM is about 93%
//! busy, nearly all of it in the kernel's send path (about 4.5 µs per send that wakes a
//! reader), and both Herald and Redis then spend the same CPU per delivery: whatever a
//! faster loop saves, it spends on reading smaller batches and sending more often.
//! Holding a batch halves the sends; the wait it adds is one arrival gap, which the
//! shorter queue more than gives back. Measured against the same server without it,
//! pinned, interleaved, 10 000/s to 20: 0.62x the CPU per delivery, p50 0.96x, p99
//! 0.92x, p99.9 0.56x; 5 000/s: 0.75x the CPU, p50 1.03x; 2 000/s: never held. A
//! publisher that is not that busy is never held: its deliveries go out at once.
//! "Busy" is the publisher's own writes against its own arrival gap, or all the
//! direct writes of its worker thread against the thread's time ([`ThreadLoad`]): two
//! publishers sharing 10 000/s to 20, 0.71x the CPU of holding neither.
//!
//! While a batch is held, whatever else its subscribers are sent (their own replies,
//! other publishers' messages) queues behind it: at most [`CORK_MAX_WAIT`], rounded up
//! to tokio's 1 ms timer tick, later. Pipelined batches and large fan-outs are never
//! held; they already share their sends through the writer tasks.
//!
//! This module owns the decision, from the publishers' arrival gaps and write times,
//! and nothing else: the connection holds and releases the deliveries; nothing here
//! touches a queue, a socket or a timer.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Longest a held batch waits for the publisher's next request before it is written
/// anyway (tokio's timer rounds this up to its next 1 ms tick).
pub const CORK_MAX_WAIT: Duration = Duration::from_micros(500);
/// Longest average gap between a publisher's batches for which it may be held: the
/// most a hold is expected to delay a delivery (2 000 batches a second or more). Two
/// publishers sharing 10 000/s to 20 subscribers average 300-480 us between their own
/// batches (they are read in pairs now and then); at 250 us neither was ever held.
pub const CORK_MAX_GAP: Duration = Duration::from_micros(500);
/// A single gap counts as at most this much in the average, so that one idle pause
/// does not keep a publisher that resumes at full rate from being held for long.
const GAP_SAMPLE_CAP: Duration = Duration::from_millis(1);
/// Share of the arrival gap a publisher's writes must fill for it to be held: below
/// that the server has time to spare, and a hold only adds a gap's wait.
const BUSY_PERCENT: u64 = 75;
/// Length of the windows over which a worker thread adds up what its publishers' writes
/// would cost unheld (see [`ThreadLoad`]).
const THREAD_WINDOW: Duration = Duration::from_millis(5);
/// Weight of a new sample in the running averages: 1 / 2^AVERAGE_SHIFT.
const AVERAGE_SHIFT: u32 = 3;

/// How connections decide to hold, from `HERALD_CORK` (a diagnostic switch, read once):
/// `0` never holds, `always` holds every short batch that has deliveries (to measure or
/// test the hold itself), anything else or unset decides by load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorkMode {
    /// By the publisher's load (the default).
    Auto,
    /// Never.
    Off,
    /// Every other batch, whatever the load.
    Always,
}

/// The process's [`CorkMode`].
pub fn mode() -> CorkMode {
    static MODE: std::sync::OnceLock<CorkMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("HERALD_CORK").as_deref() {
        Ok("0") => CorkMode::Off,
        Ok("always") => CorkMode::Always,
        _ => CorkMode::Auto,
    })
}

/// What direct writes cost one worker thread: the sum, over every batch with
/// deliveries in the last window, of its connection's average write time. Held or not,
/// a batch adds the same, so holding does not hide the load it relieves. Lets several
/// publishers that are each below [`BUSY_PERCENT`] but together keep the thread busy be
/// held (two at 5 000/s each to 20 subscribers are 45% apiece). Per thread, because
/// that is what the batches compete for; a connection that moves to another worker
/// counts there from its next batch.
#[derive(Debug, Clone, Copy)]
struct ThreadLoad {
    window_started: Option<Instant>,
    window_ns: u64,
    /// The last completed window's share of its length, in percent.
    share_percent: u64,
}

impl ThreadLoad {
    const IDLE: ThreadLoad = ThreadLoad {
        window_started: None,
        window_ns: 0,
        share_percent: 0,
    };

    /// Adds a batch whose writes take `write_ns` at `now`; returns the share of the last
    /// completed window.
    fn add(&mut self, now: Instant, write_ns: u64) -> u64 {
        match self.window_started {
            Some(started) => {
                let elapsed = duration_ns(now.saturating_duration_since(started));
                if elapsed >= duration_ns(THREAD_WINDOW) {
                    self.share_percent = self.window_ns.saturating_mul(100) / elapsed;
                    self.window_ns = 0;
                    self.window_started = Some(now);
                }
            }
            None => self.window_started = Some(now),
        }
        self.window_ns = self.window_ns.saturating_add(write_ns);
        self.share_percent
    }
}

thread_local! {
    static THREAD_LOAD: Cell<ThreadLoad> = const { Cell::new(ThreadLoad::IDLE) };
}

/// One connection's corking state: running averages of the gap between its batches
/// that had deliveries to write, and of how long writing them took.
#[derive(Debug, Default)]
pub struct Cork {
    last_batch: Option<Instant>,
    gap_ns: u64,
    write_ns: u64,
    /// Deliveries of a held batch are still waiting in the flush list.
    holding: bool,
}

impl Cork {
    /// A batch with deliveries to write directly ended at `now`: whether to hold them
    /// for the next request. Never holds twice in a row, so a delivery waits for one
    /// later batch at most.
    pub fn hold_batch(&mut self, now: Instant) -> bool {
        THREAD_LOAD.with(|cell| {
            let mut thread = cell.get();
            let hold = self.hold_batch_in(mode(), now, &mut thread);
            cell.set(thread);
            hold
        })
    }

    fn hold_batch_in(&mut self, mode: CorkMode, now: Instant, thread: &mut ThreadLoad) -> bool {
        if let Some(last) = self.last_batch.replace(now) {
            let gap = now.saturating_duration_since(last).min(GAP_SAMPLE_CAP);
            self.gap_ns = average(self.gap_ns, duration_ns(gap));
        }
        let thread_share = thread.add(now, self.write_ns);
        if self.holding {
            self.holding = false;
            return false;
        }
        self.holding = match mode {
            CorkMode::Auto => busy(self.gap_ns, self.write_ns, thread_share),
            CorkMode::Off => false,
            CorkMode::Always => true,
        };
        self.holding
    }

    /// The held deliveries went out some other way (the writer tasks, a closing
    /// connection): the next batch may be held again.
    pub fn released(&mut self) {
        self.holding = false;
    }

    /// The deliveries were written (held ones included), starting at `started`.
    pub fn wrote(&mut self, started: Instant) {
        self.holding = false;
        self.record_write(started.elapsed());
    }

    /// A write sample counts as at most [`CORK_MAX_GAP`]: one write the machine stalled
    /// in must not make a publisher with time to spare look busy.
    fn record_write(&mut self, took: Duration) {
        self.write_ns = average(self.write_ns, duration_ns(took.min(CORK_MAX_GAP)));
    }
}

/// Busy enough to hold: batches arrive often, and writing one's deliveries takes at
/// least [`BUSY_PERCENT`] of the time until the next one arrives, or all the thread's
/// publishers' writes together take that share of its time.
fn busy(gap_ns: u64, write_ns: u64, thread_share_percent: u64) -> bool {
    gap_ns > 0
        && write_ns > 0
        && gap_ns <= duration_ns(CORK_MAX_GAP)
        && (write_ns.saturating_mul(100) >= gap_ns.saturating_mul(BUSY_PERCENT)
            || thread_share_percent >= BUSY_PERCENT)
}

fn average(old: u64, sample: u64) -> u64 {
    if old == 0 {
        return sample;
    }
    let delta = (sample as i128 - old as i128) >> AVERAGE_SHIFT;
    (old as i128 + delta).max(1) as u64
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread with no other publishers: only the connection's own share counts.
    fn alone_on_its_thread() -> ThreadLoad {
        ThreadLoad::IDLE
    }

    /// A cork that has seen `batches` batches `gap` apart, each written in `write`.
    fn steady(gap: Duration, write: Duration, batches: u32) -> (Cork, Instant, Vec<bool>) {
        let mut cork = Cork::default();
        let mut now = Instant::now();
        let mut held = Vec::new();
        for _ in 0..batches {
            let hold = cork.hold_batch_in(CorkMode::Auto, now, &mut alone_on_its_thread());
            held.push(hold);
            if !hold {
                cork.write_ns = average(cork.write_ns, duration_ns(write));
                cork.holding = false;
            }
            now += gap;
        }
        (cork, now, held)
    }

    #[test]
    fn a_publisher_whose_writes_fill_its_gaps_is_held_every_other_batch() {
        let (_, _, held) = steady(Duration::from_micros(100), Duration::from_micros(90), 40);
        let tail = &held[20..];
        assert!(tail.iter().any(|&h| h), "never held: {held:?}");
        assert!(
            tail.windows(2).all(|pair| !(pair[0] && pair[1])),
            "held twice in a row: {held:?}"
        );
    }

    #[test]
    fn a_publisher_with_time_to_spare_is_never_held() {
        // Writes take a fifth of the gap.
        let (_, _, held) = steady(Duration::from_micros(100), Duration::from_micros(20), 40);
        assert!(held.iter().all(|&h| !h), "{held:?}");
        // Writes fill the gap, but the gap is too long to wait for.
        let (_, _, held) = steady(Duration::from_micros(700), Duration::from_micros(690), 40);
        assert!(held.iter().all(|&h| !h), "{held:?}");
    }

    #[test]
    fn the_first_batches_are_never_held() {
        let mut cork = Cork::default();
        let now = Instant::now();
        assert!(
            !cork.hold_batch_in(CorkMode::Auto, now, &mut alone_on_its_thread()),
            "no gap known yet"
        );
        assert!(
            !cork.hold_batch_in(
                CorkMode::Auto,
                now + Duration::from_micros(50),
                &mut alone_on_its_thread()
            ),
            "no write time known yet"
        );
    }

    #[test]
    fn an_idle_pause_stops_holding_until_the_rate_is_back() {
        let (mut cork, now, _) = steady(Duration::from_micros(100), Duration::from_micros(90), 40);
        cork.holding = false;
        let resumed = now + Duration::from_secs(5);
        assert!(
            !cork.hold_batch_in(CorkMode::Auto, resumed, &mut alone_on_its_thread()),
            "held right after a pause"
        );
        // The capped sample lets 20 batches at full rate (2 ms) bring the average back.
        let mut now = resumed;
        let held_again = (0..20).any(|_| {
            now += Duration::from_micros(100);
            cork.hold_batch_in(CorkMode::Auto, now, &mut alone_on_its_thread())
        });
        assert!(held_again, "never held again after the rate came back");
    }

    #[test]
    fn a_write_clears_the_hold_so_the_next_batch_may_be_held() {
        let (mut cork, now, _) = steady(Duration::from_micros(100), Duration::from_micros(90), 40);
        cork.holding = true;
        cork.wrote(now);
        assert!(!cork.holding);
    }

    #[test]
    fn off_never_holds_and_always_holds_every_other_batch() {
        let mut off = Cork::default();
        let mut always = Cork::default();
        let now = Instant::now();
        let off_held: Vec<bool> = (0..4)
            .map(|_| off.hold_batch_in(CorkMode::Off, now, &mut alone_on_its_thread()))
            .collect();
        let always_held: Vec<bool> = (0..4)
            .map(|_| always.hold_batch_in(CorkMode::Always, now, &mut alone_on_its_thread()))
            .collect();
        assert_eq!(off_held, [false; 4]);
        assert_eq!(always_held, [true, false, true, false]);
    }

    #[test]
    fn publishers_that_together_keep_the_thread_busy_are_held() {
        // Two publishers, each writing 90 us of deliveries every 200 us (45% apiece).
        let mut thread = ThreadLoad::IDLE;
        let (mut a, mut b) = (Cork::default(), Cork::default());
        let start = Instant::now();
        let mut held = [false, false];
        for step in 0..200u32 {
            let now = start + Duration::from_micros(100) * step;
            let cork = if step % 2 == 0 { &mut a } else { &mut b };
            if cork.hold_batch_in(CorkMode::Auto, now, &mut thread) {
                held[(step % 2) as usize] = true;
            } else {
                cork.write_ns = average(cork.write_ns, 90_000);
            }
        }
        assert_eq!(held, [true, true], "share {}", thread.share_percent);
        // Alone, either would not be.
        let mut alone = ThreadLoad::IDLE;
        let mut c = Cork::default();
        let any = (0..100u32).any(|step| {
            let now = start + Duration::from_micros(200) * step;
            let hold = c.hold_batch_in(CorkMode::Auto, now, &mut alone);
            c.write_ns = average(c.write_ns, 90_000);
            hold
        });
        assert!(
            !any,
            "held alone at 45% (thread share {})",
            alone.share_percent
        );
    }

    #[test]
    fn the_thread_share_is_the_last_window_of_unheld_write_time() {
        let mut thread = ThreadLoad::IDLE;
        let start = Instant::now();
        // 5 ms of batches, 50 us of writes every 100 us: 50%.
        for step in 0..50u32 {
            assert_eq!(
                thread.add(start + Duration::from_micros(100) * step, 50_000),
                0
            );
        }
        let share = thread.add(start + THREAD_WINDOW, 50_000);
        assert_eq!(share, 50);
        // An idle second brings it down to nearly nothing.
        let later = start + THREAD_WINDOW * 2 + Duration::from_secs(1);
        assert_eq!(thread.add(later, 50_000), 0);
    }

    #[test]
    fn one_stalled_write_does_not_make_a_publisher_with_time_to_spare_busy() {
        // 3 000/s, 90 us of writes: 27% of its gap.
        let gap = Duration::from_micros(333);
        let (mut cork, mut now, _) = steady(gap, Duration::from_micros(90), 40);
        cork.holding = false;
        cork.record_write(Duration::from_millis(20));
        let held = (0..4).any(|_| {
            now += gap;
            cork.hold_batch_in(CorkMode::Auto, now, &mut alone_on_its_thread())
        });
        assert!(!held, "held after one slow write: {cork:?}");
    }

    #[test]
    fn averages_follow_their_samples_and_never_reach_zero() {
        assert_eq!(average(0, 800), 800);
        assert_eq!(average(800, 0), 700);
        assert_eq!(average(800, 1600), 900);
        assert_eq!(average(1, 0), 1);
        assert!(average(u64::MAX / 2, u64::MAX) > u64::MAX / 2);
    }
}
