//! Checking and repairing an append-only file offline (`herald check-aof FILE [--fix]`).
//!
//! A check reads the whole file with the loader's own reader and reports how far it is
//! sound. A repair cuts the file at that point, the last whole entry, which is what
//! Redis's `redis-check-aof --fix` does; unlike it, the bytes cut off are first saved
//! beside the file (`<file>.discarded`), so a repair never destroys data that a person
//! may still want to inspect.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use super::format::{AofEntry, AofReader, FormatError};

/// What a check found.
#[derive(Debug)]
pub struct CheckReport {
    /// The file's size in bytes.
    pub size: u64,
    /// Whole entries read (a transaction counts once).
    pub entries: u64,
    /// Commands in them (a transaction's commands each count).
    pub commands: u64,
    /// Bytes from the start that hold whole entries.
    pub valid_up_to: u64,
    /// Why reading stopped before the end, if it did.
    pub problem: Option<FormatError>,
}

impl CheckReport {
    /// The whole file is sound.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Reads `path` to its end or to its first problem.
pub fn check_file(path: &Path) -> io::Result<CheckReport> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = AofReader::new(BufReader::with_capacity(1 << 16, file));
    let mut report = CheckReport {
        size,
        entries: 0,
        commands: 0,
        valid_up_to: 0,
        problem: None,
    };
    loop {
        match reader.next_entry() {
            Ok(Some((_, entry))) => {
                report.entries += 1;
                report.commands += match entry {
                    AofEntry::Command(_) => 1,
                    AofEntry::Transaction(commands) => commands.len() as u64,
                };
                report.valid_up_to = reader.position();
            }
            Ok(None) => return Ok(report),
            Err(FormatError::Io(err)) => return Err(err),
            Err(problem) => {
                report.problem = Some(problem);
                return Ok(report);
            }
        }
    }
}

/// What a repair did.
#[derive(Debug)]
pub struct FixOutcome {
    /// The check before the repair.
    pub report: CheckReport,
    /// Where the bytes cut off were saved; `None` when nothing needed cutting.
    pub saved_to: Option<PathBuf>,
}

/// Cuts `path` after its last whole entry, saving the rest to `<path>.discarded`.
pub fn fix_file(path: &Path) -> io::Result<FixOutcome> {
    let report = check_file(path)?;
    if report.is_ok() {
        return Ok(FixOutcome {
            report,
            saved_to: None,
        });
    }
    let bytes = std::fs::read(path)?;
    let start = usize::try_from(report.valid_up_to)
        .map_err(|_| io::Error::other("offset beyond this platform's address space"))?;
    let tail = bytes.get(start..).unwrap_or_default();
    let mut saved_to = path.as_os_str().to_owned();
    saved_to.push(".discarded");
    let saved_to = PathBuf::from(saved_to);
    let mut saved = File::create(&saved_to)?;
    saved.write_all(tail)?;
    saved.sync_all()?;
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(report.valid_up_to)?;
    file.sync_all()?;
    Ok(FixOutcome {
        report,
        saved_to: Some(saved_to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::format::encode_command;

    fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("herald-check-{name}-{}.aof", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn sample() -> (Vec<u8>, usize) {
        let mut bytes = Vec::new();
        encode_command(&mut bytes, &["SET", "a", "1"]);
        encode_command(&mut bytes, &["MULTI"]);
        encode_command(&mut bytes, &["LPUSH", "l", "x"]);
        encode_command(&mut bytes, &["LTRIM", "l", "0", "99"]);
        encode_command(&mut bytes, &["EXEC"]);
        let sound = bytes.len();
        encode_command(&mut bytes, &["SET", "b", "2"]);
        (bytes, sound)
    }

    #[test]
    fn a_sound_file_checks_clean_and_fix_leaves_it() {
        let (bytes, _) = sample();
        let path = file_with("sound", &bytes);
        let report = check_file(&path).unwrap();
        assert!(report.is_ok());
        assert_eq!((report.entries, report.commands), (3, 4));
        assert_eq!(report.valid_up_to, bytes.len() as u64);
        let outcome = fix_file(&path).unwrap();
        assert!(outcome.saved_to.is_none());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn fix_cuts_a_truncated_tail_and_saves_it() {
        let (bytes, sound) = sample();
        let cut = bytes.len() - 3;
        let path = file_with("truncated", &bytes[..cut]);
        let report = check_file(&path).unwrap();
        assert!(report
            .problem
            .as_ref()
            .is_some_and(FormatError::is_truncated));
        assert_eq!(report.valid_up_to, sound as u64);
        let outcome = fix_file(&path).unwrap();
        let saved = outcome.saved_to.unwrap();
        assert_eq!(std::fs::read(&saved).unwrap(), &bytes[sound..cut]);
        assert_eq!(std::fs::read(&path).unwrap(), &bytes[..sound]);
        assert!(check_file(&path).unwrap().is_ok());
    }

    #[test]
    fn corruption_in_the_middle_names_its_offset() {
        let (mut bytes, _) = sample();
        let first_record = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n".len();
        bytes[first_record] = b'#';
        let path = file_with("corrupt", &bytes);
        let report = check_file(&path).unwrap();
        match report.problem {
            Some(FormatError::Corrupt { offset, .. }) => assert_eq!(offset, first_record as u64),
            other => panic!("{other:?}"),
        }
        assert_eq!(report.valid_up_to, first_record as u64);
    }
}
