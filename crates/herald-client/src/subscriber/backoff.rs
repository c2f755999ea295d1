//! Reconnect delays: exponential backoff with jitter, so that many clients cut off by one
//! server restart do not all come back in the same instant.

use std::time::Duration;

use rand::Rng;

/// How long to wait between reconnect attempts.
///
/// Attempt `n` (from 0) waits a random time between half and all of
/// `min(max, initial * factor^n)` ("equal jitter"): never zero, never above `max`.
///
/// ```
/// use std::time::Duration;
/// use herald_client::Backoff;
///
/// let backoff = Backoff::default();
/// let third = backoff.delay(2);
/// assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
/// assert!(backoff.delay(100) <= backoff.max);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry (before jitter).
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The growth per attempt.
    pub factor: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, at most 5 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// The ceiling of attempt `attempt`'s delay, before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let grown = self.initial.as_nanos() as f64 * self.factor.max(1.0).powi(exponent);
        // NaN or infinity (absurd factors) fall back to the maximum.
        if grown.is_finite() && grown < self.max.as_nanos() as f64 {
            Duration::from_nanos(grown.max(0.0).round() as u64)
        } else {
            self.max
        }
    }

    /// The randomised delay before reconnect attempt `attempt` (counted from 0).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(rand::rng().random_range(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_jitter_window_and_stop_at_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(1000),
            factor: 2.0,
        };
        for attempt in 0..40 {
            let ceiling = backoff.ceiling(attempt);
            assert_eq!(
                ceiling,
                Duration::from_millis(10 * (1 << attempt.min(20))).min(backoff.max)
            );
            for _ in 0..20 {
                let delay = backoff.delay(attempt);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} vs {ceiling:?}"
                );
            }
        }
        assert_eq!(backoff.ceiling(u32::MAX), backoff.max);
    }

    #[test]
    fn jitter_actually_varies() {
        let backoff = Backoff::default();
        let delays: std::collections::HashSet<_> = (0..50).map(|_| backoff.delay(5)).collect();
        assert!(delays.len() > 10);
    }

    #[test]
    fn absurd_factors_do_not_panic() {
        for factor in [f64::NAN, f64::INFINITY, -3.0, 0.0, 1e300] {
            let backoff = Backoff {
                factor,
                ..Backoff::default()
            };
            assert!(backoff.delay(1000) <= backoff.max);
        }
    }
}
