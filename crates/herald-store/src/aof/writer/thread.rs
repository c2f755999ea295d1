//! The writer thread: takes what appenders buffered, writes it with one `write`, fsyncs
//! by policy, advances the watermarks replies wait on, switches files at the end of a
//! rewrite, and handles failed writes and fsyncs (see the parent module). It owns the
//! file; it must not hold the shared lock while it writes or fsyncs, except while
//! switching files.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cohort::Cohorts;
use super::runway;
use super::{
    FsyncPolicy, Shared, State, FSYNC_INTERVAL, LINGER_MAX_BYTES, SHUTDOWN_ATTEMPTS, WRITE_LINGER,
};

/// What only the writer thread touches.
pub(super) struct WriterThread {
    shared: Arc<Shared>,
    file: File,
    /// Size of the file up to its last whole record (what a failed write is cut back to),
    /// where the next batch is written.
    size: u64,
    /// Length of the file: `size` plus the zero runway, if there is one.
    allocated: u64,
    /// Size up to the last successful fsync.
    synced_size: u64,
    /// Under `always`: the bytes written since the last successful fsync, written again
    /// when that fsync fails.
    unsynced: Vec<u8>,
    written_sequence: u64,
    synced_sequence: u64,
    last_sync: Instant,
    batch: Vec<u8>,
    cohorts: Cohorts,
}

impl WriterThread {
    pub(super) fn new(
        shared: Arc<Shared>,
        file: File,
        size: u64,
        allocated: u64,
        cohorts: Cohorts,
    ) -> Self {
        WriterThread {
            shared,
            file,
            size,
            allocated,
            synced_size: size,
            unsynced: Vec::new(),
            written_sequence: 0,
            synced_sequence: 0,
            last_sync: Instant::now(),
            batch: Vec::new(),
            cohorts,
        }
    }

    pub(super) fn run(mut self) {
        self.serve();
        // Whoever asks for a flush from now on is told the writer stopped, not left
        // waiting for an answer that will never come.
        self.shared.state.lock().flushes.clear();
    }

    fn serve(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut shutdown_failures = 0;
        let mut lingered = false;
        loop {
            let mut state = shared.state.lock();
            if let Some((snapshot, reply)) = state.switch.take() {
                let result = self.switch_to(&mut state, &snapshot);
                drop(state);
                let _ = reply.send(result);
                continue;
            }
            if !state.flushes.is_empty() {
                let waiting = std::mem::take(&mut state.flushes);
                drop(state);
                let flushed = self.flush_now();
                for reply in waiting {
                    let answer = match &flushed {
                        Ok(()) => Ok(()),
                        Err(message) => Err(io::Error::other(message.clone())),
                    };
                    let _ = reply.send(answer);
                }
                continue;
            }
            let failing = state.last_error.is_some();
            let must_sync = self.synced_sequence < self.written_sequence
                && (state.policy == FsyncPolicy::Always
                    || (state.policy == FsyncPolicy::EverySec
                        && self.last_sync.elapsed() >= FSYNC_INTERVAL));
            if state.pending.is_empty() && !must_sync && !state.shutdown {
                let wait = if failing || self.synced_sequence < self.written_sequence {
                    FSYNC_INTERVAL.saturating_sub(self.last_sync.elapsed())
                } else {
                    FSYNC_INTERVAL
                };
                shared
                    .wake
                    .wait_for(&mut state, wait.max(Duration::from_millis(1)));
                continue;
            }
            let linger = state.policy != FsyncPolicy::Always
                && !state.shutdown
                && !failing
                && state.pending.len() < LINGER_MAX_BYTES;
            if linger && !lingered && !state.pending.is_empty() {
                lingered = true;
                shared.wake.wait_for(&mut state, WRITE_LINGER);
                continue;
            }
            lingered = false;
            if state.policy == FsyncPolicy::Always
                && !state.shutdown
                && !failing
                && !state.pending.is_empty()
            {
                self.gather(&mut state);
                if state.switch.is_some() {
                    continue;
                }
            }
            let shutdown = state.shutdown && state.pending.is_empty();
            std::mem::swap(&mut self.batch, &mut state.pending);
            let sequence = state.appended;
            let policy = state.policy;
            drop(state);
            self.cohorts.taken(sequence - self.written_sequence);

            if !self.batch.is_empty() && !self.write_batch(sequence, policy) {
                if shutdown_failures == SHUTDOWN_ATTEMPTS && self.give_up() {
                    return;
                }
                shutdown_failures += u32::from(self.shared.state.lock().shutdown);
                self.pause_after_failure();
                continue;
            }
            let sync_now = shutdown
                || policy == FsyncPolicy::Always
                || (policy == FsyncPolicy::EverySec && self.last_sync.elapsed() >= FSYNC_INTERVAL);
            if sync_now && self.synced_sequence < self.written_sequence && !self.sync(policy) {
                if shutdown {
                    return;
                }
                self.pause_after_failure();
                continue;
            }
            if shutdown {
                self.trim_runway();
                return;
            }
        }
    }

    /// For [`super::AofWriter::flush`]: writes what is buffered and fsyncs, without
    /// lingering or gathering. A failure is handled as anywhere else (the bytes go back
    /// to the buffer, writes are refused) and its message returned.
    fn flush_now(&mut self) -> Result<(), String> {
        let mut state = self.shared.state.lock();
        std::mem::swap(&mut self.batch, &mut state.pending);
        let sequence = state.appended;
        let policy = state.policy;
        drop(state);
        self.cohorts.taken(sequence - self.written_sequence);
        let written = self.batch.is_empty() || self.write_batch(sequence, policy);
        let synced =
            written && (self.synced_sequence >= self.written_sequence || self.sync(policy));
        if synced {
            return Ok(());
        }
        let state = self.shared.state.lock();
        Err(state
            .last_error
            .clone()
            .unwrap_or_else(|| "the append-only file could not be written".to_owned()))
    }

    /// Under `always`, before an fsync: waits for the cohort of writes it expects (see
    /// `cohort.rs`), with the lock released meanwhile.
    fn gather(&self, state: &mut parking_lot::MutexGuard<'_, State>) {
        let due = self.written_sequence + self.cohorts.expected();
        if state.appended >= due {
            return;
        }
        let started = Instant::now();
        let deadline = started + self.cohorts.patience();
        state.gather_until = due;
        let mut seen = state.appended;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = self.cohorts.limits.quiet.min(deadline - now);
            self.shared.wake.wait_for(state, wait);
            if state.appended >= due
                || state.appended == seen
                || state.shutdown
                || state.switch.is_some()
            {
                break;
            }
            seen = state.appended;
        }
        state.gather_until = 0;
        state.times.gathering += started.elapsed();
    }

    /// Writes the batch; on failure cuts the file back and puts the batch back in front.
    fn write_batch(&mut self, sequence: u64, policy: FsyncPolicy) -> bool {
        if policy == FsyncPolicy::Always {
            self.extend_runway(self.batch.len() as u64);
        }
        match self.file.write_all_at(&self.batch, self.size) {
            Ok(()) => {
                self.size += self.batch.len() as u64;
                self.allocated = self.allocated.max(self.size);
                if policy == FsyncPolicy::Always {
                    self.unsynced.extend_from_slice(&self.batch);
                }
                self.batch.clear();
                self.written_sequence = sequence;
                {
                    let mut state = self.shared.state.lock();
                    state.current_size = self.size;
                    self.shared.failing.store(false, Ordering::Release);
                    if state.last_error.take().is_some() {
                        tracing::info!("append-only file writes succeed again");
                    }
                }
                // After the size is recorded, so that a woken waiter sees it.
                self.shared.progress.send_modify(|progress| {
                    progress.written = sequence;
                    progress.failing = false;
                });
                true
            }
            Err(err) => {
                tracing::error!(
                    path = %self.shared.path.display(),
                    "cannot write the append-only file: {err}; retrying every second, write commands are refused meanwhile"
                );
                if let Err(cut) = self.cut_to(self.size) {
                    tracing::error!("cannot cut a partial record off the append-only file: {cut}");
                }
                let mut state = self.shared.state.lock();
                self.batch.extend_from_slice(&state.pending);
                std::mem::swap(&mut self.batch, &mut state.pending);
                self.batch.clear();
                state.last_error = Some(err.to_string());
                self.shared.failing.store(true, Ordering::Release);
                drop(state);
                self.shared
                    .progress
                    .send_modify(|progress| progress.failing = true);
                false
            }
        }
    }

    fn sync(&mut self, policy: FsyncPolicy) -> bool {
        let started = Instant::now();
        match self.file.sync_data() {
            Ok(()) => {
                let fsync = started.elapsed();
                self.cohorts.synced(fsync);
                self.last_sync = Instant::now();
                {
                    let mut state = self.shared.state.lock();
                    state.fsyncs += 1;
                    state.times.fsync += fsync;
                }
                self.synced_size = self.size;
                self.unsynced.clear();
                self.synced_sequence = self.written_sequence;
                let releasing = Instant::now();
                self.shared.synced.advance(self.synced_sequence);
                if policy == FsyncPolicy::Always {
                    self.shared.state.lock().times.releasing += releasing.elapsed();
                }
                self.shared
                    .progress
                    .send_if_modified(|progress| std::mem::take(&mut progress.failing));
                true
            }
            Err(err) => {
                tracing::error!(
                    path = %self.shared.path.display(),
                    "cannot fsync the append-only file: {err}; write commands are refused until it succeeds"
                );
                self.last_sync = Instant::now();
                self.shared
                    .progress
                    .send_modify(|progress| progress.failing = true);
                let mut state = self.shared.state.lock();
                state.last_error = Some(err.to_string());
                self.shared.failing.store(true, Ordering::Release);
                if policy == FsyncPolicy::Always {
                    // Write the unsynced bytes again: the kernel may have dropped them.
                    // (Not `cut_to`: the state lock borrows `self.shared` here.)
                    if self.file.set_len(self.synced_size).is_ok() {
                        self.size = self.synced_size;
                        self.allocated = self.synced_size;
                        self.unsynced.extend_from_slice(&state.pending);
                        std::mem::swap(&mut self.unsynced, &mut state.pending);
                        self.unsynced.clear();
                    }
                }
                false
            }
        }
    }

    /// Under `always`: makes sure zeros lie ahead of the next `incoming` bytes, so that
    /// their fsync does not have to write the inode (see `runway.rs`). The fsync that
    /// follows makes the zeros durable with the batch. A failure only means no runway:
    /// the batch is then written past the end of the file, as without one.
    fn extend_runway(&mut self, incoming: u64) {
        let Some(target) = runway::extension(self.size, incoming, self.allocated) else {
            return;
        };
        let from = self.allocated.max(self.size);
        match runway::fill(&self.file, from, target) {
            Ok(()) => self.allocated = target,
            Err(err) => {
                tracing::warn!(
                    path = %self.shared.path.display(),
                    "cannot zero-fill ahead of the append-only file ({err}); writing without"
                );
                // Gives back what a full disk let the fill take; if even that fails, the
                // zeros past `allocated` are harmless (read as the end of the file).
                let _ = self.cut_to(self.size);
            }
        }
    }

    /// At a clean shutdown: cuts the zero runway off, so that the file ends with its last
    /// record (as Redis's does) and its size is the size of its records.
    fn trim_runway(&mut self) {
        if self.allocated <= self.size {
            return;
        }
        let trimmed = self.cut_to(self.size).and_then(|()| self.file.sync_all());
        // Harmless: the next start finds the records' end and reads the zeros as the end.
        if let Err(err) = trimmed {
            tracing::warn!(
                path = %self.shared.path.display(),
                "cannot cut the zero-filled tail off the append-only file: {err}"
            );
        }
    }

    /// Cuts the file to `length`, and the runway with it, keeping `allocated` true.
    fn cut_to(&mut self, length: u64) -> io::Result<()> {
        self.file.set_len(length)?;
        self.allocated = length;
        Ok(())
    }

    /// At shutdown, after [`SHUTDOWN_ATTEMPTS`] failed writes: says loudly what could not
    /// be written (none of it was acknowledged) and lets the process end.
    fn give_up(&self) -> bool {
        let state = self.shared.state.lock();
        tracing::error!(
            path = %self.shared.path.display(),
            unwritten_bytes = state.pending.len(),
            "shutting down with writes the append-only file could not take; they were never acknowledged"
        );
        true
    }

    fn pause_after_failure(&self) {
        let mut state = self.shared.state.lock();
        if !state.shutdown && state.switch.is_none() {
            self.shared.wake.wait_for(&mut state, FSYNC_INTERVAL);
        }
    }

    /// Appends the rewrite's copy to `snapshot`, makes it durable and the live file.
    /// Appenders wait meanwhile, so every record is in exactly the file that ends up live.
    fn switch_to(&mut self, state: &mut State, snapshot: &Path) -> io::Result<()> {
        let Some(copy) = state.rewrite.take() else {
            return Err(io::Error::other("no rewrite in progress"));
        };
        // Not `append`, like the live file (see `AofWriter::open`).
        let file = OpenOptions::new().read(true).write(true).open(snapshot)?;
        let snapshot_size = file.metadata()?.len();
        file.write_all_at(&copy, snapshot_size)?;
        file.sync_all()?;
        std::fs::rename(snapshot, &self.shared.path)?;
        if let Some(dir) = self.shared.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        let size = snapshot_size + copy.len() as u64;
        self.file = file;
        self.size = size;
        self.allocated = size;
        self.synced_size = size;
        self.unsynced.clear();
        self.batch.clear();
        state.pending.clear();
        state.current_size = size;
        state.base_size = size;
        state.last_error = None;
        self.shared.failing.store(false, Ordering::Release);
        self.written_sequence = state.appended;
        self.synced_sequence = state.appended;
        self.last_sync = Instant::now();
        let appended = state.appended;
        self.shared.progress.send_modify(|progress| {
            progress.written = appended;
            progress.failing = false;
        });
        self.shared.synced.advance(appended);
        Ok(())
    }
}
