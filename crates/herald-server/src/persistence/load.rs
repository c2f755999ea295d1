//! Start-up loading: the append-only file replayed into the keyspace before the server
//! accepts its first client.
//!
//! Each entry runs through the ordinary command table on a session of its own, with
//! expiry paused so that nothing expires during the replay (keys vanish only where the
//! file says `DEL`) and with nothing logged (the file is what is being read). A transaction replays under the
//! keyspace lock as one unit.
//!
//! A file that ends inside a record is what a crash mid-write leaves: with
//! `aof-load-truncated yes` (the default, as Redis) the partial record is dropped with a
//! warning and the file is cut back so that new appends follow whole records; with `no`
//! the server refuses to start. Damage anywhere else, or a command the server does not
//! know, stops the start-up with the offset: serving a keyspace that silently lacks part
//! of its history would be worse than not serving.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_engine::Outbox;
use herald_store::aof::{AofEntry, AofReader, FormatError};

use super::AofSettings;
use crate::clients::ClientHandle;
use crate::server::Shared;
use crate::session::Session;
use crate::writer::ProtocolCell;

/// How often a long load reports its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Bytes read (up to the last whole entry).
    pub bytes: u64,
    /// Commands replayed (a transaction's commands each count).
    pub commands: u64,
    /// Where a truncated tail was cut off, if one was.
    pub truncated_at: Option<u64>,
}

/// Why the server cannot start from the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or repaired.
    #[error("cannot read the append-only file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file is damaged before its end.
    #[error("bad file format reading the append-only file {path} at offset {offset}: {reason}; `herald check-aof --fix {path}` repairs it by cutting it there")]
    Corrupt {
        /// The file.
        path: String,
        /// The first bad byte.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The file ends inside a record and `aof-load-truncated` is `no`.
    #[error("the append-only file {path} is truncated at offset {offset} and aof-load-truncated is no; `herald check-aof --fix {path}` cuts off the partial record")]
    Truncated {
        /// The file.
        path: String,
        /// Where the partial record starts.
        offset: u64,
    },
}

/// Replays `settings.path()` into `shared`'s keyspace. A missing file is an empty one.
pub fn load_file(shared: &Arc<Shared>, settings: &AofSettings) -> Result<LoadReport, LoadError> {
    let path = settings.path();
    let shown = path.display().to_string();
    let io_error = |source| LoadError::Io {
        path: shown.clone(),
        source,
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(LoadReport::default()),
        Err(err) => return Err(io_error(err)),
    };
    let size = file.metadata().map_err(io_error)?.len();
    let started = Instant::now();
    if size > 0 {
        tracing::info!(path = %shown, bytes = size, "loading the append-only file");
    }
    let mut report = LoadReport::default();
    shared.set_loading(true);
    let outcome = replay(
        shared,
        BufReader::with_capacity(1 << 16, file),
        size,
        &mut report,
    );
    shared.set_loading(false);
    match outcome {
        Ok(()) => {}
        Err(FormatError::Truncated { offset }) if settings.load_truncated => {
            tracing::warn!(
                path = %shown,
                offset,
                dropped_bytes = size - offset,
                "!!! the append-only file ends inside a record (a crash while writing?): \
                 loading what precedes it and cutting the partial record off"
            );
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|file| {
                    file.set_len(offset)?;
                    file.sync_all()
                })
                .map_err(io_error)?;
            report.truncated_at = Some(offset);
        }
        Err(FormatError::Truncated { offset }) => {
            return Err(LoadError::Truncated {
                path: shown,
                offset,
            })
        }
        Err(FormatError::Corrupt { offset, reason }) => {
            return Err(LoadError::Corrupt {
                path: shown,
                offset,
                reason: reason.to_owned(),
            })
        }
        Err(FormatError::Io(err)) => return Err(io_error(err)),
    }
    if size > 0 {
        tracing::info!(
            path = %shown,
            commands = report.commands,
            seconds = started.elapsed().as_secs_f64(),
            "DB loaded from append only file"
        );
    }
    Ok(report)
}

/// A replay error that is not the reader's: an unknown command at `offset`.
fn unknown_command(offset: u64, args: &[Bytes]) -> FormatError {
    tracing::error!(
        offset,
        command = %String::from_utf8_lossy(args.first().map_or(&b""[..], |a| &a[..])),
        "unknown command in the append-only file"
    );
    FormatError::Corrupt {
        offset,
        reason: "unknown command or wrong number of arguments",
    }
}

fn replay(
    shared: &Arc<Shared>,
    input: impl io::BufRead,
    size: u64,
    report: &mut LoadReport,
) -> Result<(), FormatError> {
    let mut session = loading_session(shared);
    let mut reader = AofReader::new(input);
    let mut last_progress = Instant::now();
    while let Some((offset, entry)) = reader.next_entry()? {
        match entry {
            AofEntry::Command(args) => {
                if !session.replay(&args) {
                    return Err(unknown_command(offset, &args));
                }
                report.commands += 1;
            }
            AofEntry::Transaction(commands) => {
                let mut unknown = None;
                shared.store.atomically(|| {
                    for args in &commands {
                        if !session.replay(args) {
                            unknown = Some(args.clone());
                            return;
                        }
                    }
                });
                if let Some(args) = unknown {
                    return Err(unknown_command(offset, &args));
                }
                report.commands += commands.len() as u64;
            }
        }
        report.bytes = reader.position();
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            tracing::info!(
                done_bytes = report.bytes,
                total_bytes = size,
                percent = report.bytes * 100 / size.max(1),
                "loading the append-only file"
            );
        }
    }
    Ok(())
}

fn loading_session(shared: &Arc<Shared>) -> Session {
    let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let id = shared.next_client_id();
    let outbox = Arc::new(Outbox::new(id, Arc::clone(shared.config.output_limits())));
    let handle = Arc::new(ClientHandle::new(id, nowhere, nowhere, outbox));
    let mut session = Session::new(
        Arc::clone(shared),
        handle,
        Arc::new(ProtocolCell::default()),
    );
    session.authenticated = true;
    session
}
