//! Persistence: what the server writes to the append-only file, how it reads it back at
//! start, and how it compacts it (BGREWRITEAOF).
//!
//! # Layout
//! - this module: [`Persistence`], the live file as the command path sees it (records in
//!   keyspace order, `SELECT` inserted when the database changes, effects the keyspace
//!   made on its own);
//! - [`load`]: replaying a file into a fresh server before it accepts clients;
//! - [`rewrite`]: writing a compact file from a snapshot while writes go on.
//!
//! What is logged: every command flagged `write` that did not fail, after it ran, in a
//! form that replays to the same state (see [`crate::session::Propagate`]: relative
//! expiry times become absolute `PXAT`/`PEXPIREAT`, INCRBYFLOAT becomes the SET of its
//! result, a served blocking pop becomes the pop it performed), a transaction as one
//! `MULTI … EXEC` unit, and every key that expired as a `DEL`. All of it is appended
//! while the keyspace lock is held, so the file's order is the order in which the
//! keyspace changed. A replay expires nothing: keys vanish at exactly the points where
//! their `DEL` was logged, so every replayed command sees what it saw live.
//!
//! The file format and the fsync machinery live in `herald_store::aof`; this module must
//! not do file I/O on the command path (appends only copy bytes into a buffer).

pub mod load;
pub mod rewrite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_store::aof::{encode_command, AofWriter, FsyncPolicy};
use herald_store::Keyspace;
use parking_lot::Mutex;

use crate::server::Shared;

pub use load::{load_file, LoadError, LoadReport};

/// Offline checking and repair, re-exported for `herald check-aof`.
pub mod check {
    pub use herald_store::aof::check::{check_file, fix_file, CheckReport, FixOutcome};
    pub use herald_store::aof::FormatError;
}
pub use rewrite::RewriteOutcome;

/// Redis default `auto-aof-rewrite-percentage`.
pub const DEFAULT_AUTO_REWRITE_PERCENTAGE: u64 = 100;
/// Redis default `auto-aof-rewrite-min-size`: 64 MB.
pub const DEFAULT_AUTO_REWRITE_MIN_SIZE_BYTES: u64 = 64 * 1024 * 1024;

/// Where the file lives and how it is written; the `append*` settings of the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofSettings {
    /// `dir`: the directory of the file (and of rewrites' temporary files).
    pub dir: PathBuf,
    /// `appendfilename`.
    pub file_name: String,
    /// `appendfsync`.
    pub fsync: FsyncPolicy,
    /// `aof-load-truncated`: load a file whose last record is cut short (dropping it).
    pub load_truncated: bool,
}

impl AofSettings {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file_name)
    }
}

/// Every `append*` setting: the file's settings and the automatic-rewrite thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofConfig {
    /// Where the file is and how it is synced.
    pub settings: AofSettings,
    /// `auto-aof-rewrite-percentage` (0 disables automatic rewrites).
    pub auto_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size` in bytes.
    pub auto_rewrite_min_size: u64,
}

/// Turns persistence on while the server runs (CONFIG SET appendonly yes), as Redis
/// does: a file left by an earlier run describes an older keyspace, so it is replaced by
/// a rewrite of the current one; writes are logged from this instant on.
pub fn enable(shared: &Arc<Shared>) -> Result<(), String> {
    if shared.persistence().is_some() {
        return Ok(());
    }
    let config = shared.aof_config.lock().clone();
    let path = config.settings.path();
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "replacing the stale append-only file"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(format!("cannot replace {}: {err}", path.display())),
    }
    let persistence = Persistence::open(config.settings.clone())
        .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    persistence.set_auto_rewrite(config.auto_rewrite_percentage, config.auto_rewrite_min_size);
    shared.set_persistence(Some(Arc::new(persistence)));
    // Writes logged between the line above and the snapshot are inside the snapshot.
    rewrite::start(shared).map_err(|err| err.to_string())?;
    tracing::info!(path = %path.display(), "append-only file enabled");
    Ok(())
}

/// Turns persistence off (CONFIG SET appendonly no): the file is flushed and fsynced in
/// the background and no longer written.
pub fn disable(shared: &Shared) {
    if let Some(persistence) = shared.set_persistence(None) {
        let spawned = std::thread::Builder::new()
            .name("herald-aof-close".to_owned())
            .spawn(move || persistence.shutdown());
        if let Err(err) = spawned {
            tracing::error!("cannot close the append-only file in the background: {err}");
        }
        tracing::info!("append-only file disabled");
    }
}

/// Outcome of the last rewrite, for INFO persistence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RewriteStatus {
    /// No rewrite ran yet (INFO says `ok`, as Redis).
    #[default]
    None,
    /// The last rewrite completed.
    Ok,
    /// The last rewrite failed.
    Err,
}

#[derive(Debug, Default)]
struct RewriteState {
    in_progress: bool,
    last_status: RewriteStatus,
    last_duration: Option<Duration>,
}

/// The live append-only file.
#[derive(Debug)]
pub struct Persistence {
    writer: AofWriter,
    settings: AofSettings,
    /// The database the file's last `SELECT` named; [`NO_DB`] forces one before the next
    /// record (after opening and when a rewrite starts). Read and changed only under the
    /// keyspace lock (and, for records, inside the writer's append), like the appends it
    /// describes, so relaxed loads and stores suffice: no lock of its own per record.
    selected: AtomicUsize,
    rewrite: Mutex<RewriteState>,
    auto_rewrite_percentage: AtomicU64,
    auto_rewrite_min_size: AtomicU64,
    rewrites: AtomicU64,
}

impl Persistence {
    /// Opens the file for appending (creating it when missing).
    pub fn open(settings: AofSettings) -> std::io::Result<Persistence> {
        let writer = AofWriter::open(&settings.path(), settings.fsync)?;
        Ok(Persistence {
            writer,
            settings,
            selected: AtomicUsize::new(NO_DB),
            rewrite: Mutex::new(RewriteState::default()),
            auto_rewrite_percentage: AtomicU64::new(DEFAULT_AUTO_REWRITE_PERCENTAGE),
            auto_rewrite_min_size: AtomicU64::new(DEFAULT_AUTO_REWRITE_MIN_SIZE_BYTES),
            rewrites: AtomicU64::new(0),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Where rewrites put their temporary files.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// The writer (durability waits, fsync policy, sizes).
    pub fn writer(&self) -> &AofWriter {
        &self.writer
    }

    /// `Err` with Redis's `-MISCONF` text while the file cannot be written.
    pub fn check_writable(&self) -> Result<(), String> {
        self.writer
            .writable()
            .map_err(|error| format!("MISCONF Errors writing to the AOF file: {error}"))
    }

    /// Appends `records` (database, command) in order, inside `MULTI`/`EXEC` when
    /// `transaction` is set; returns the sequence number to wait on, or `None` when
    /// there was nothing to append. Call it with the keyspace lock held.
    pub fn log<'a>(
        &self,
        records: impl IntoIterator<Item = (usize, &'a [Bytes])>,
        transaction: bool,
    ) -> Option<u64> {
        let mut records = records.into_iter().peekable();
        records.peek()?;
        let sequence = self.writer.append_with(|out| {
            if transaction {
                encode_command(out, &[b"MULTI"]);
            }
            for (db, args) in records {
                select(out, &self.selected, db);
                encode_command(out, args);
            }
            if transaction {
                encode_command(out, &[b"EXEC"]);
            }
        });
        Some(sequence)
    }

    /// Logs what the keyspace changed on its own since the last call: expired keys as
    /// `DEL`, then blocked clients served as the pops they performed. Call it with the
    /// keyspace lock held, right after the operation that caused them.
    pub fn log_effects(&self, keyspace: &mut Keyspace) -> Option<u64> {
        // Called after every command: the usual answer, nothing, must be cheap.
        if !keyspace.has_effects() {
            return None;
        }
        let expired = keyspace.take_expired();
        let served = keyspace.take_served();
        if expired.is_empty() && served.is_empty() {
            return None;
        }
        let deletes: Vec<(usize, [Bytes; 2])> = expired
            .into_iter()
            .map(|(db, key)| (db, [Bytes::from_static(b"DEL"), key]))
            .collect();
        self.log(
            deletes
                .iter()
                .map(|(db, args)| (*db, &args[..]))
                .chain(served.iter().map(|(db, args)| (*db, &args[..]))),
            false,
        )
    }

    /// The sequence number of the last append.
    pub fn last_sequence(&self) -> u64 {
        self.writer.last_sequence()
    }

    /// `auto-aof-rewrite-percentage` and `auto-aof-rewrite-min-size`.
    pub fn auto_rewrite(&self) -> (u64, u64) {
        (
            self.auto_rewrite_percentage.load(Ordering::Relaxed),
            self.auto_rewrite_min_size.load(Ordering::Relaxed),
        )
    }

    /// Changes the automatic-rewrite thresholds (0 % disables automatic rewrites).
    pub fn set_auto_rewrite(&self, percentage: u64, min_size: u64) {
        self.auto_rewrite_percentage
            .store(percentage, Ordering::Relaxed);
        self.auto_rewrite_min_size
            .store(min_size, Ordering::Relaxed);
    }

    /// True when the file grew enough beyond its last rewritten size that an automatic
    /// rewrite is due (Redis's rule: bigger than the minimum size and than
    /// `base × (1 + percentage/100)`).
    pub fn auto_rewrite_due(&self) -> bool {
        let (percentage, min_size) = self.auto_rewrite();
        if percentage == 0 || self.rewrite_in_progress() {
            return false;
        }
        let status = self.writer.status();
        if status.current_size < min_size {
            return false;
        }
        let base = status.base_size.max(1);
        status.current_size.saturating_sub(base) * 100 / base >= percentage
    }

    /// A rewrite is running.
    pub fn rewrite_in_progress(&self) -> bool {
        self.rewrite.lock().in_progress
    }

    /// The last rewrite's outcome and how long it took.
    pub fn last_rewrite(&self) -> (RewriteStatus, Option<Duration>) {
        let state = self.rewrite.lock();
        (state.last_status, state.last_duration)
    }

    /// Rewrites completed since start.
    pub fn rewrites(&self) -> u64 {
        self.rewrites.load(Ordering::Relaxed)
    }

    /// Writes and fsyncs everything logged so far and waits for it (SHUTDOWN's check;
    /// blocking file I/O, not for an async worker).
    pub fn flush(&self) -> std::io::Result<()> {
        self.writer.flush()
    }

    /// Flushes and fsyncs what is buffered, then stops the writer (shutdown).
    pub fn shutdown(&self) {
        self.writer.shutdown();
    }

    /// Marks the start of a rewrite; false when one is running. Under the keyspace lock:
    /// the next record names its database again, because the new file will not end with
    /// the `SELECT` the old one had in force.
    fn start_rewrite(&self) -> bool {
        let mut state = self.rewrite.lock();
        if state.in_progress || !self.writer.begin_rewrite() {
            return false;
        }
        state.in_progress = true;
        self.selected.store(NO_DB, Ordering::Relaxed);
        true
    }

    fn end_rewrite(&self, ok: bool, took: Duration) {
        let mut state = self.rewrite.lock();
        state.in_progress = false;
        state.last_status = if ok {
            RewriteStatus::Ok
        } else {
            RewriteStatus::Err
        };
        state.last_duration = Some(took);
        if ok {
            self.rewrites.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `selected` before any `SELECT` is in force.
const NO_DB: usize = usize::MAX;

fn select(out: &mut Vec<u8>, selected: &AtomicUsize, db: usize) {
    if selected.load(Ordering::Relaxed) != db {
        encode_command(out, &[b"SELECT", itoa::Buffer::new().format(db).as_bytes()]);
        selected.store(db, Ordering::Relaxed);
    }
}
