//! BGREWRITEAOF and automatic rewrites: a compact file written beside the live one while
//! writes go on, then switched in atomically.
//!
//! The snapshot is copied under the keyspace lock at the same instant the writer starts
//! keeping a copy of every later append ([`herald_store::aof::AofWriter::begin_rewrite`]),
//! so snapshot plus copy is exactly the state at switch time. The snapshot is encoded
//! and fsynced on a blocking thread, then the writer appends the copy, fsyncs, renames
//! the new file over the live one and fsyncs the directory. A crash at any point leaves
//! the old file or the new one under the name, both complete; the temporary file of an
//! interrupted rewrite is removed by the next one.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use herald_store::aof::Snapshot;

use super::Persistence;
use crate::server::Shared;

/// What a completed rewrite did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteOutcome {
    /// Keys in the snapshot.
    pub keys: usize,
    /// The file's size before and after.
    pub bytes_before: u64,
    /// Size of the new file.
    pub bytes_after: u64,
}

/// Why a rewrite did not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteRefused {
    /// `appendonly` is `no`.
    #[error("ERR Background append only file rewriting needs appendonly yes")]
    Disabled,
    /// One is running.
    #[error("ERR Background append only file rewriting already in progress")]
    InProgress,
}

/// Starts a rewrite in the background; the task logs its outcome.
pub fn start(shared: &Arc<Shared>) -> Result<(), RewriteRefused> {
    let persistence = shared.persistence().ok_or(RewriteRefused::Disabled)?;
    let started = Instant::now();
    let snapshot = shared.store.with(|keyspace| {
        if !persistence.start_rewrite() {
            return None;
        }
        Some(Snapshot::take(keyspace, crate::server::unix_time_millis()))
    });
    let snapshot = snapshot.ok_or(RewriteRefused::InProgress)?;
    tracing::info!(
        keys = snapshot.len(),
        "background append only file rewriting started"
    );
    tokio::task::spawn_blocking(move || {
        let result = write_and_switch(&persistence, &snapshot);
        let took = started.elapsed();
        match &result {
            Ok(outcome) => tracing::info!(
                keys = outcome.keys,
                bytes_before = outcome.bytes_before,
                bytes_after = outcome.bytes_after,
                seconds = took.as_secs_f64(),
                "background AOF rewrite finished successfully"
            ),
            Err(err) => {
                persistence.writer().abort_rewrite();
                tracing::error!("background AOF rewrite failed: {err}");
            }
        }
        persistence.end_rewrite(result.is_ok(), took);
    });
    Ok(())
}

fn temp_path(persistence: &Persistence) -> PathBuf {
    persistence
        .dir()
        .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()))
}

fn write_and_switch(
    persistence: &Persistence,
    snapshot: &Snapshot,
) -> std::io::Result<RewriteOutcome> {
    let bytes_before = persistence.writer().status().current_size;
    let temp = temp_path(persistence);
    let written = (|| {
        let file = File::create(&temp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        snapshot.write_to(&mut out)?;
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        persistence.writer().finish_rewrite(&temp)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    Ok(RewriteOutcome {
        keys: snapshot.len(),
        bytes_before,
        bytes_after: persistence.writer().status().current_size,
    })
}
