//! The zero-filled runway at the end of the file under `appendfsync always`.
//!
//! An fsync after an append must also write the inode, whose size changed; an fsync
//! after overwriting blocks that are already allocated and written (`fdatasync` of an
//! unchanged size) writes only the data. Measured here (ext4, a virtio disk): 300-425 µs
//! and 125-139 µs of CPU per `fdatasync` after appending 800 bytes, 212-263 µs and
//! 91-115 µs after overwriting them in place. So under `always`, where every reply waits
//! for an fsync, the writer keeps [`RUNWAY_BYTES`] of real zeros written beyond the last
//! record and writes records over them, as databases pre-fill their logs. (Preallocating
//! with `fallocate` is not the same: its unwritten extents must be converted, which is
//! metadata again.)
//!
//! What that costs: one zero-filling write per [`RUNWAY_BYTES`] of records (a few
//! milliseconds), and a file that, after a crash, ends in zeros. The reader takes those
//! zeros as the end of the file (`format.rs`), [`logical_end`] finds where the records
//! end when the file is opened again, and a clean shutdown cuts the zeros off, so a file
//! Herald closed is byte for byte what Redis would write.
//!
//! This module owns only the arithmetic and the zero-filling; the writer thread decides
//! when to call it and must treat a failure as "no runway" (the next write then extends
//! the file the ordinary way), never as a failed write.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Zeros kept ahead of the records: at about 1 KB of records per fsync, one fill per
/// several thousand fsyncs.
pub(super) const RUNWAY_BYTES: u64 = 8 << 20;

/// One write's worth of zeros.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Where the records of `file` (`length` bytes long) end: after its last non-zero byte.
/// A record ends in `\n`, so a file without a runway ends where it is long.
pub(super) fn logical_end(file: &File, length: u64) -> io::Result<u64> {
    let mut buffer = vec![0u8; ZEROS.len()];
    let mut end = length;
    while end > 0 {
        let start = end.saturating_sub(buffer.len() as u64);
        let chunk = &mut buffer[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(last) = chunk.iter().rposition(|&byte| byte != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// How far the file must be zero-filled before `incoming` more bytes are written at
/// `size`, given that it is `allocated` bytes long: `None` while the runway is long
/// enough (at least half of it is left after the write).
pub(super) fn extension(size: u64, incoming: u64, allocated: u64) -> Option<u64> {
    let after = size + incoming;
    (after + RUNWAY_BYTES / 2 > allocated).then_some(after + RUNWAY_BYTES)
}

/// Writes zeros from `from` up to `to`.
pub(super) fn fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut at = from;
    while at < to {
        let length = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..length], at)?;
        at += length as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_runway_is_extended_when_less_than_half_would_remain() {
        assert_eq!(extension(0, 100, 0), Some(100 + RUNWAY_BYTES));
        let allocated = 100 + RUNWAY_BYTES;
        assert_eq!(extension(100, 1000, allocated), None);
        let near = allocated - RUNWAY_BYTES / 2;
        assert_eq!(
            extension(near - 10, 20, allocated),
            Some(near + 10 + RUNWAY_BYTES)
        );
        // A batch longer than the whole runway still ends inside the new one.
        assert_eq!(
            extension(0, 3 * RUNWAY_BYTES, allocated),
            Some(4 * RUNWAY_BYTES)
        );
    }

    #[test]
    fn the_logical_end_is_after_the_last_record() {
        let path = std::env::temp_dir().join(format!("herald-runway-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(logical_end(&file, 0).unwrap(), 0);
        file.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(logical_end(&file, 14).unwrap(), 14);
        // Zeros over several read chunks, and a chunk boundary inside them.
        fill(&file, 14, 14 + 3 * ZEROS.len() as u64 + 7).unwrap();
        let length = file.metadata().unwrap().len();
        assert_eq!(length, 14 + 3 * ZEROS.len() as u64 + 7);
        assert_eq!(logical_end(&file, length).unwrap(), 14);
        file.set_len(0).unwrap();
        fill(&file, 0, 1000).unwrap();
        assert_eq!(logical_end(&file, 1000).unwrap(), 0);
        drop(file);
        let _ = std::fs::remove_file(path);
    }
}
