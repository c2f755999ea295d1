//! The append side of the append-only file: a cheap in-memory append for the command
//! path, a background thread that writes and fsyncs, and the watermarks replies wait on.
//!
//! Commands append their records while they hold the keyspace lock, so the file's order
//! is the order in which the keyspace changed. An append only copies bytes into a
//! buffer and returns a sequence number; it never touches the disk. The writer thread
//! takes everything buffered in one swap, writes it with one `write`, and (by policy)
//! fsyncs it: all writes that arrived during one fsync share the next one, which is
//! group commit. Two watermarks tell a connection when its reply may go out:
//! - *written*: the bytes are in the kernel (a crash of Herald loses nothing);
//! - *synced*: they are on disk (a crash of the machine loses nothing).
//!
//! Under [`FsyncPolicy::Always`] replies wait for *synced* (each woken only by the
//! fsync that covers it, see `writer/synced.rs`), an fsync waits briefly for the cohort
//! of writes it expects (`writer/cohort.rs`), and records are written over zeros kept
//! ahead of them, so that an fsync need not write the inode (`writer/runway.rs`; a clean
//! shutdown cuts the zeros off); under `everysec` and `no` for
//! *written*, and the thread fsyncs once a second (`everysec`) or never (`no`, the
//! kernel decides). While writes fail, `everysec` and `no` replies stop waiting (as
//! Redis answers them: the data is in memory and retried), `always` replies keep waiting.
//!
//! When a write fails (a full disk), the file is cut back to its last whole record, the
//! bytes stay buffered and are retried every second, [`AofWriter::writable`] turns
//! further write commands away (the server answers `-MISCONF`), and the waiting replies
//! keep waiting: nothing is acknowledged that is not in the file, and nothing buffered is
//! dropped. A failed fsync under `always` is handled the same way with the unsynced
//! bytes written again, because after a failed fsync Linux may have dropped the dirty
//! pages and a later fsync would succeed without them.
//!
//! Rewrites: [`AofWriter::begin_rewrite`] starts keeping a copy of every append; the
//! caller writes a snapshot of the keyspace (as of that moment) to a temporary file; then
//! [`AofWriter::finish_rewrite`] has the thread append the copy to it, fsync it, rename it
//! over the live file and fsync the directory. At every instant the path names a
//! complete file: the old one until the rename, the new one after.
//!
//! Locking: one `parking_lot::Mutex` over the buffer and flags, held for a memcpy by
//! appenders and for a swap by the thread (whether writes are failing is mirrored in an
//! atomic, so the check every write command makes takes no lock); the file itself belongs to the thread, which
//! holds no lock while it writes or fsyncs (except while switching files on a rewrite,
//! when appenders must wait so that no record lands in the old file only).

use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use self::synced::SyncedWaiters;

mod cohort;
mod runway;
mod synced;
mod thread;

/// How often `everysec` fsyncs, and how often a failed write or fsync is retried.
const FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Under `everysec` and `no`, how long the thread lets appends gather before it writes
/// them: one `write` per interval instead of one per wake-up (Redis writes once per
/// event-loop iteration). Replies do not wait for it under these policies.
const WRITE_LINGER: Duration = Duration::from_millis(1);

/// Buffered bytes that end a linger at once.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// Failed writes tolerated at shutdown before giving up,
/// so that a full disk cannot keep the process from exiting.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// When the data reaches the disk (Redis's `appendfsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Before every reply that follows a write (group commit).
    Always,
    /// About once a second; a machine crash loses at most about a second.
    #[default]
    EverySec,
    /// When the kernel decides.
    No,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "no" => Ok(FsyncPolicy::No),
            _ => Err(format!(
                "appendfsync must be always, everysec or no, not '{text}'"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        })
    }
}

/// The state INFO persistence reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteStatus {
    /// Bytes in the live file, written so far.
    pub current_size: u64,
    /// Its size after the last rewrite (or at open): the base of automatic rewrites.
    pub base_size: u64,
    /// Bytes appended and not yet written.
    pub buffered: u64,
    /// The last write or fsync error, while it lasts.
    pub last_error: Option<String>,
    /// A rewrite is collecting appends.
    pub rewriting: bool,
    /// Successful fsyncs since the file was opened.
    pub fsyncs: u64,
    /// Records appended since the file was opened.
    pub appends: u64,
    /// Where the writer thread's time went since the file was opened.
    pub times: WriterTimes,
}

/// Where the writer thread's time went: what bounds `always`, whose clients wait for all
/// three in turn (INFO persistence reports them, and `herald_aof_fsyncs` against
/// `herald_aof_appends` tells how many writes each fsync served).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterTimes {
    /// In successful fsyncs.
    pub fsync: Duration,
    /// Under `always`, waiting for the writes of a cohort before an fsync.
    pub gathering: Duration,
    /// Under `always`, running what waited for an fsync (sending the replies it made
    /// durable), before the next write.
    pub releasing: Duration,
}

#[derive(Debug)]
struct State {
    pending: Vec<u8>,
    /// Sequence number of the last append.
    appended: u64,
    policy: FsyncPolicy,
    last_error: Option<String>,
    rewrite: Option<Vec<u8>>,
    switch: Option<(PathBuf, mpsc::Sender<io::Result<()>>)>,
    /// Callers of [`AofWriter::flush`] waiting for the thread's answer.
    flushes: Vec<mpsc::Sender<io::Result<()>>>,
    current_size: u64,
    base_size: u64,
    fsyncs: u64,
    times: WriterTimes,
    shutdown: bool,
    /// While the thread waits for a cohort (`writer/cohort.rs`): the sequence whose
    /// append should wake it; appends before it do not.
    gather_until: u64,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// `state.last_error.is_some()`, changed with it under the lock: every write command
    /// asks [`AofWriter::writable`], which must not take the lock appenders use.
    failing: AtomicBool,
    state: Mutex<State>,
    wake: Condvar,
    /// *written*, for `everysec` and `no`.
    progress: watch::Sender<Progress>,
    /// *synced*, for `always` (every reply waits there, so waiters are woken one by one).
    synced: SyncedWaiters,
}

/// How far the thread got writing: what `everysec` and `no` replies wait on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    /// Last sequence in the kernel.
    written: u64,
    /// Writes are failing right now.
    failing: bool,
}

/// The live append-only file. Dropping it flushes and fsyncs what is buffered.
#[derive(Debug)]
pub struct AofWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl AofWriter {
    /// Opens (or creates) `path` for appending and starts the writer thread.
    pub fn open(path: &Path, policy: FsyncPolicy) -> io::Result<AofWriter> {
        Self::open_with_cohorts(path, policy, cohort::Cohorts::default())
    }

    fn open_with_cohorts(
        path: &Path,
        policy: FsyncPolicy,
        cohorts: cohort::Cohorts,
    ) -> io::Result<AofWriter> {
        // Not `append`: records are written at an offset, over the zero runway when there
        // is one (`writer/runway.rs`), and with O_APPEND Linux ignores the offset.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let allocated = file.metadata()?.len();
        let size = runway::logical_end(&file, allocated)?;
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            state: Mutex::new(State {
                pending: Vec::new(),
                appended: 0,
                policy,
                last_error: None,
                rewrite: None,
                switch: None,
                flushes: Vec::new(),
                current_size: size,
                base_size: size,
                fsyncs: 0,
                times: WriterTimes::default(),
                shutdown: false,
                gather_until: 0,
            }),
            failing: AtomicBool::new(false),
            wake: Condvar::new(),
            progress: watch::Sender::new(Progress::default()),
            synced: SyncedWaiters::default(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("herald-aof".to_owned())
                .spawn(move || {
                    thread::WriterThread::new(shared, file, size, allocated, cohorts).run()
                })?
        };
        Ok(AofWriter {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// `Err` with the last failure while the file cannot be written: write commands must
    /// be refused (Redis's `-MISCONF`) rather than acknowledged and lost.
    pub fn writable(&self) -> Result<(), String> {
        if !self.shared.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        match &self.shared.state.lock().last_error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Appends what `encode` writes (whole records) and returns its sequence number.
    pub fn append_with(&self, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let mut state = self.shared.state.lock();
        let start = state.pending.len();
        encode(&mut state.pending);
        let State {
            pending, rewrite, ..
        } = &mut *state;
        if let Some(copy) = rewrite {
            copy.extend_from_slice(&pending[start..]);
        }
        state.appended += 1;
        let sequence = state.appended;
        // The thread needs a wake-up only when it may be idle: the first append of a
        // batch. `always` waits for every batch, so it is woken each time, except by
        // the appends of a cohort it is gathering before the one it waits for.
        let wake = start == 0
            || (state.policy == FsyncPolicy::Always && sequence >= state.gather_until)
            || state.pending.len() >= LINGER_MAX_BYTES;
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        sequence
    }

    /// The sequence number of the last append (0 before any).
    pub fn last_sequence(&self) -> u64 {
        self.shared.state.lock().appended
    }

    /// Resolves once append `sequence` is as durable as the policy in force promises.
    pub fn durable(&self, sequence: u64) -> impl Future<Output = ()> + Send + 'static {
        self.wait_durable(sequence, None)
    }

    /// Like [`Self::durable`], and `then` runs exactly once, no later than the moment
    /// the future could resolve: under `always` on the writer thread right after the
    /// fsync that covers `sequence` (a connection's reply is sent at the fsync instead
    /// of after its task is woken and scheduled), or when the writer goes away; at once
    /// when `sequence` is already on disk or the policy is `everysec` or `no` (whose
    /// replies do not wait). So a caller may hand its reply to `then` and not poll the
    /// future until it has something else to send.
    pub fn durable_then(
        &self,
        sequence: u64,
        then: Box<dyn FnOnce() + Send>,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.wait_durable(sequence, Some(then))
    }

    fn wait_durable(
        &self,
        sequence: u64,
        then: Option<Box<dyn FnOnce() + Send>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let synced = match self.policy() {
            FsyncPolicy::Always => Some(self.shared.synced.wait_then(sequence, then)),
            FsyncPolicy::EverySec | FsyncPolicy::No => {
                if let Some(then) = then {
                    then();
                }
                None
            }
        };
        let mut progress = synced.is_none().then(|| self.shared.progress.subscribe());
        async move {
            // The senders live as long as this writer; an error means it is gone.
            if let Some(Some(synced)) = synced {
                let _ = synced.await;
            } else if let Some(progress) = progress.as_mut() {
                let _ = progress
                    .wait_for(|done| done.written >= sequence || done.failing)
                    .await;
            }
        }
    }

    /// Append `sequence` is on disk (fsynced), whatever the policy.
    pub fn is_synced(&self, sequence: u64) -> bool {
        self.shared.synced.synced() >= sequence
    }

    /// Resolves once append `sequence` is fsynced, whatever the policy (WAITAOF): within
    /// about a second under `everysec`, at the next fsync under `always`, and under `no`
    /// only when a rewrite or the shutdown fsyncs the file. Also resolves if the writer
    /// goes away.
    pub fn synced(&self, sequence: u64) -> impl Future<Output = ()> + Send + 'static {
        let waiting = self.shared.synced.wait_then(sequence, None);
        async move {
            if let Some(woken) = waiting {
                let _ = woken.await;
            }
        }
    }

    /// Append `sequence` is in the kernel (written, maybe not fsynced).
    pub fn is_written(&self, sequence: u64) -> bool {
        self.shared.progress.borrow().written >= sequence
    }

    /// The fsync policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.state.lock().policy
    }

    /// Changes the fsync policy (CONFIG SET appendfsync).
    pub fn set_policy(&self, policy: FsyncPolicy) {
        self.shared.state.lock().policy = policy;
        self.shared.wake.notify_one();
    }

    /// Sizes and health, for INFO persistence and automatic rewrites.
    pub fn status(&self) -> WriteStatus {
        let state = self.shared.state.lock();
        WriteStatus {
            current_size: state.current_size,
            base_size: state.base_size,
            buffered: state.pending.len() as u64,
            last_error: state.last_error.clone(),
            rewriting: state.rewrite.is_some(),
            fsyncs: state.fsyncs,
            appends: state.appended,
            times: state.times,
        }
    }

    /// Starts keeping a copy of every append for a rewrite; false when one already is.
    /// Call it while holding the keyspace lock, at the instant of the snapshot.
    pub fn begin_rewrite(&self) -> bool {
        let mut state = self.shared.state.lock();
        if state.rewrite.is_some() {
            return false;
        }
        state.rewrite = Some(Vec::new());
        true
    }

    /// Drops the copy of a rewrite that failed.
    pub fn abort_rewrite(&self) {
        self.shared.state.lock().rewrite = None;
    }

    /// Completes a rewrite: `snapshot` (a file in the same directory holding the keyspace
    /// as of [`AofWriter::begin_rewrite`]) gets every append since, is fsynced and
    /// replaces the live file. Blocks until the switch is done; on failure the live file
    /// is untouched and keeps receiving appends.
    pub fn finish_rewrite(&self, snapshot: &Path) -> io::Result<()> {
        self.ask_thread(|state, reply| {
            if state.rewrite.is_none() {
                return Err(io::Error::other("no rewrite in progress"));
            }
            state.switch = Some((snapshot.to_owned(), reply));
            Ok(())
        })
    }

    /// Writes and fsyncs everything appended so far, whatever the policy, and waits for
    /// it: SHUTDOWN's check, before it commits to exiting, that nothing would be lost
    /// (Redis flushes and fsyncs its file there too, and stays up when that fails). The
    /// error is the write's or the fsync's; the bytes stay buffered and are retried as
    /// after any failure.
    pub fn flush(&self) -> io::Result<()> {
        self.ask_thread(|state, reply| {
            state.flushes.push(reply);
            Ok(())
        })
    }

    /// Hands the thread a request (`post` files `reply` in the state, or refuses), wakes
    /// it and blocks for its answer. Refused once the thread is shutting down: it may
    /// already have flushed and exited, and nobody would answer.
    fn ask_thread(
        &self,
        post: impl FnOnce(&mut State, mpsc::Sender<io::Result<()>>) -> io::Result<()>,
    ) -> io::Result<()> {
        let (reply, result) = mpsc::channel();
        {
            let mut state = self.shared.state.lock();
            if state.shutdown {
                return Err(io::Error::other("the append-only file is shutting down"));
            }
            post(&mut state, reply)?;
        }
        self.shared.wake.notify_one();
        result
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the append-only file writer stopped")))
    }

    /// Writes and fsyncs everything buffered, then stops the thread (SIGTERM path).
    pub fn shutdown(&self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!("the append-only file writer thread panicked");
            }
        }
    }
}

impl Drop for AofWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
