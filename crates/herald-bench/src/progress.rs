//! Progress on stderr: an `indicatif` bar when stderr is a terminal, otherwise one plain
//! line at the start and one at the end (CI logs stay readable).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the bar re-reads the counter.
const TICK: Duration = Duration::from_millis(100);

/// A running progress display for one run.
#[derive(Debug)]
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    counter: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    /// Starts showing `counter` out of `total` (must be called inside a tokio runtime).
    pub fn start(label: String, total: u64, counter: Arc<AtomicU64>) -> Progress {
        let started = Instant::now();
        if !std::io::stderr().is_terminal() {
            eprintln!("herald bench: {label}: starting ({total} publishes)");
            return Progress {
                label,
                bar: None,
                ticker: None,
                counter,
                started,
            };
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} publishes ({per_sec})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(label.clone());
        let ticker = {
            let bar = bar.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                loop {
                    bar.set_position(counter.load(Ordering::Relaxed));
                    tokio::time::sleep(TICK).await;
                }
            })
        };
        Progress {
            label,
            bar: Some(bar),
            ticker: Some(ticker),
            counter,
            started,
        }
    }

    /// Stops the display.
    pub fn finish(self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        let done = self.counter.load(Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!(
                "herald bench: {}: {done} publishes answered in {:.2}s",
                self.label,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }
}
