//! The dashboard's sampler: a five-minute history of message rates, the channel-rate
//! sampling while someone looks, and the live event shared by every open stream.
//!
//! [`Dashboard::tick`] runs once a second from the gateway's cron: it records the rates
//! and, while someone looked at the dashboard in the last [`VIEWER_WINDOW`], folds the
//! channels' publish counters into their rates (a walk of every channel, which is why it
//! stops when nobody looks). [`Dashboard::publish_live`] then builds the live stream's
//! event once for every open stream (a `watch` channel), so ten open dashboards cost
//! what one does. The mutex is held only for ring-buffer updates, never across an
//! `.await` or a walk of the channels.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::hub::Hub;

/// Points of rate history kept: five minutes at one per second.
pub const HISTORY_POINTS: usize = 300;
/// How often the cron samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Channel rates keep being sampled this long after the last dashboard request.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);

/// One second of history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Point {
    pub(super) unix_ms: u64,
    pub(super) published_per_sec: f64,
    pub(super) delivered_per_sec: f64,
}

#[derive(Debug, Default)]
struct Samples {
    points: VecDeque<Point>,
    /// Engine totals (published, delivered) at the last tick.
    last_totals: Option<(Instant, u64, u64)>,
    /// When channel rates were last sampled.
    last_rate_sample: Option<Instant>,
    /// When a dashboard route was last requested.
    last_viewed: Option<Instant>,
}

/// The dashboard's sampler state; see the module docs.
#[derive(Debug)]
pub struct Dashboard {
    pub(super) started: Instant,
    state: Mutex<Samples>,
    /// The latest live-stream event body, shared by every open stream.
    pub(super) live: tokio::sync::watch::Sender<Option<Arc<str>>>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            started: Instant::now(),
            state: Mutex::new(Samples::default()),
            live: tokio::sync::watch::channel(None).0,
        }
    }
}

impl Dashboard {
    /// Notes that someone is looking, so channel rates are kept up to date.
    pub fn viewed(&self) {
        self.state.lock().last_viewed = Some(Instant::now());
    }

    /// One sample: rate history always, channel rates while viewed.
    pub fn tick(&self, engine: &herald_engine::Engine) {
        let now = Instant::now();
        let stats = engine.stats();
        let sample_channels = {
            let mut state = self.state.lock();
            if let Some((at, published, delivered)) = state.last_totals {
                let seconds = now.duration_since(at).as_secs_f64();
                if seconds > 0.0 {
                    let point = Point {
                        unix_ms: unix_ms(),
                        published_per_sec: stats.messages_published.saturating_sub(published)
                            as f64
                            / seconds,
                        delivered_per_sec: stats.deliveries.saturating_sub(delivered) as f64
                            / seconds,
                    };
                    if state.points.len() == HISTORY_POINTS {
                        state.points.pop_front();
                    }
                    state.points.push_back(point);
                }
            }
            state.last_totals = Some((now, stats.messages_published, stats.deliveries));
            let watched = state
                .last_viewed
                .is_some_and(|at| now.duration_since(at) <= VIEWER_WINDOW);
            let elapsed = state.last_rate_sample.map(|at| now.duration_since(at));
            if watched || elapsed.is_none() {
                state.last_rate_sample = Some(now);
            }
            watched.then_some(elapsed).flatten()
        };
        // The walk happens outside the lock; the lock only orders the timestamps.
        if let Some(elapsed) = sample_channels {
            engine.sample_channel_rates(elapsed);
        }
    }

    /// Builds the live event once for all open streams (nothing when none is open).
    pub fn publish_live(&self, hub: &Hub) {
        if self.live.receiver_count() > 0 {
            self.live.send_replace(Some(super::live_body(hub).into()));
        }
    }

    pub(super) fn history(&self) -> Vec<Point> {
        self.state.lock().points.iter().copied().collect()
    }
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_engine::{ChannelOrder, Scope};

    #[test]
    fn ticks_record_rates_and_keep_five_minutes() {
        let engine = herald_engine::Engine::new();
        let dashboard = Dashboard::default();
        dashboard.tick(&engine);
        assert!(
            dashboard.history().is_empty(),
            "the first tick only sets the baseline"
        );
        for _ in 0..10 {
            engine.publish(
                Scope::Classic,
                bytes::Bytes::from_static(b"c"),
                bytes::Bytes::new(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
        dashboard.tick(&engine);
        let history = dashboard.history();
        assert_eq!(history.len(), 1);
        assert!(history[0].published_per_sec > 10.0);
        assert_eq!(history[0].delivered_per_sec, 0.0);
        for _ in 0..HISTORY_POINTS + 5 {
            dashboard.tick(&engine);
        }
        assert_eq!(dashboard.history().len(), HISTORY_POINTS);
    }

    #[test]
    fn channel_rates_are_sampled_only_while_someone_looks() {
        let engine = herald_engine::Engine::new();
        let outbox = Arc::new(herald_engine::Outbox::new(
            herald_engine::ClientId(1),
            Arc::new(herald_engine::OutputLimits::default()),
        ));
        engine.subscribe(Scope::Classic, bytes::Bytes::from_static(b"c"), &outbox);
        let dashboard = Dashboard::default();
        dashboard.tick(&engine);
        let publish = || {
            for _ in 0..10 {
                engine.publish(
                    Scope::Classic,
                    bytes::Bytes::from_static(b"c"),
                    bytes::Bytes::new(),
                );
            }
        };
        let rate = || engine.top_channels(Scope::Classic, ChannelOrder::Rate, 1, None)[0].rate;
        publish();
        std::thread::sleep(Duration::from_millis(10));
        dashboard.tick(&engine);
        assert_eq!(rate(), 0.0, "nobody looked");
        dashboard.viewed();
        publish();
        std::thread::sleep(Duration::from_millis(10));
        dashboard.tick(&engine);
        assert!(rate() > 0.0);
    }
}
