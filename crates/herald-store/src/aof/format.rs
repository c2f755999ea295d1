//! The record format of the append-only file and its reader.
//!
//! Each record is one command as a RESP multibulk array (`*<n>\r\n` then `n` bulks
//! `$<len>\r\n<bytes>\r\n`), exactly what Redis writes. A transaction is logged as the
//! records `MULTI`, its commands, `EXEC`; the reader hands it back as one
//! [`AofEntry::Transaction`] so the caller replays it as a unit, or not at all.
//!
//! The reader distinguishes the two ways a file goes wrong, because they call for
//! opposite reactions:
//! - [`FormatError::Truncated`]: the file ends inside a record (or inside a transaction),
//!   what a crash in the middle of a write leaves behind. Every byte before the offset
//!   is sound; dropping the tail loses only the write that was never acknowledged.
//! - [`FormatError::Corrupt`]: a byte that cannot be there, with its offset. Something
//!   other than a crash damaged the file; nothing after it can be trusted.
//!
//! Under `appendfsync always` the writer keeps the file's end pre-filled with zeros
//! (see `writer/runway.rs`), so a crash leaves the records followed by zeros. The
//! reader takes zeros where a record would start, up to the end of the file, as the end
//! of the file; a record that breaks off into zeros to the end as a truncation; and
//! zeros followed by anything else as corruption at that byte.
//!
//! It must not allocate in proportion to a declared size: a length field is only a
//! promise, and bytes are buffered as they are actually read.

use std::io::{self, BufRead, Read};

use bytes::Bytes;

/// Digits in the longest length or count the reader accepts (`i64::MAX` has 19).
const NUMBER_MAX_DIGITS: usize = 19;

/// Argument slots reserved up front for one record, whatever its header declares.
const ARGS_PREALLOC_MAX: usize = 1024;

/// Largest argument accepted, in bytes: Redis's `proto-max-bulk-len` ceiling, so a
/// corrupt length field cannot make the loader buffer the rest of a huge file.
pub const ARGUMENT_MAX_BYTES: u64 = 1 << 32;

/// Appends one command to `out` in the file's format.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    // Every write command passes here: one reservation for the whole record (a length
    // takes at most 20 digits, plus `$`/`*` and two CRLFs), then plain copies.
    let payload: usize = args.iter().map(|arg| arg.as_ref().len()).sum();
    out.reserve(payload + 25 * (args.len() + 1));
    let mut number = itoa::Buffer::new();
    let mut header = |out: &mut Vec<u8>, kind: u8, n: usize| {
        out.push(kind);
        if n < 10 {
            out.push(b'0' + n as u8);
        } else {
            out.extend_from_slice(number.format(n).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    };
    header(out, b'*', args.len());
    for arg in args {
        let arg = arg.as_ref();
        header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Why a file could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file ends inside the record or transaction that starts at `offset`.
    #[error("truncated record at offset {offset}")]
    Truncated {
        /// Where the incomplete record (or its transaction's MULTI) begins.
        offset: u64,
    },
    /// An impossible byte at `offset`.
    #[error("corrupt file at offset {offset}: {reason}")]
    Corrupt {
        /// The byte that is wrong.
        offset: u64,
        /// What was expected there.
        reason: &'static str,
    },
    /// The file could not be read.
    #[error("cannot read the append-only file: {0}")]
    Io(#[from] io::Error),
}

impl FormatError {
    /// A crash's signature: only the tail is incomplete.
    pub fn is_truncated(&self) -> bool {
        matches!(self, FormatError::Truncated { .. })
    }
}

/// One unit of replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AofEntry {
    /// A single command: its name, then its arguments.
    Command(Vec<Bytes>),
    /// The commands between a `MULTI` and its `EXEC`, to be applied atomically.
    Transaction(Vec<Vec<Bytes>>),
}

/// Reads [`AofEntry`]s from an append-only file, tracking byte offsets.
#[derive(Debug)]
pub struct AofReader<R> {
    input: R,
    position: u64,
    /// The byte consumed last: a record that broke off on a zero may have run into the
    /// zero-filled tail.
    last: u8,
}

/// What a read inside a record found instead of the byte it needed.
enum Stop {
    End,
    Corrupt { offset: u64, reason: &'static str },
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        Stop::Io(err)
    }
}

impl<R: BufRead> AofReader<R> {
    /// A reader positioned at the start of `input`.
    pub fn new(input: R) -> Self {
        AofReader {
            input,
            position: 0,
            last: 0,
        }
    }

    /// Bytes consumed so far: after an `Ok` this is where the next entry starts, and
    /// after `Ok(None)` where the records end (a zero-filled tail is not counted).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next entry with the offset it starts at; `Ok(None)` at a clean end of file.
    pub fn next_entry(&mut self) -> Result<Option<(u64, AofEntry)>, FormatError> {
        let start = self.position;
        let Some(first) = self.next_record()? else {
            return Ok(None);
        };
        if is_named(&first, b"exec") {
            return Err(FormatError::Corrupt {
                offset: start,
                reason: "EXEC without MULTI",
            });
        }
        if !is_named(&first, b"multi") {
            return Ok(Some((start, AofEntry::Command(first))));
        }
        let mut commands = Vec::new();
        loop {
            let at = self.position;
            let record = match self.next_record() {
                Ok(Some(record)) => record,
                Ok(None) | Err(FormatError::Truncated { .. }) => {
                    return Err(FormatError::Truncated { offset: start })
                }
                Err(err) => return Err(err),
            };
            if is_named(&record, b"exec") {
                return Ok(Some((start, AofEntry::Transaction(commands))));
            }
            if is_named(&record, b"multi") {
                return Err(FormatError::Corrupt {
                    offset: at,
                    reason: "MULTI inside a transaction",
                });
            }
            commands.push(record);
        }
    }

    fn next_record(&mut self) -> Result<Option<Vec<Bytes>>, FormatError> {
        let start = self.position;
        match self.input.fill_buf()?.first() {
            None => return Ok(None),
            Some(0) => {
                return match self.first_nonzero_after(start)? {
                    None => Ok(None),
                    Some(offset) => Err(FormatError::Corrupt {
                        offset,
                        reason: "data after the zero-filled end of the file",
                    }),
                }
            }
            Some(_) => {}
        }
        match self.record() {
            Ok(record) => Ok(Some(record)),
            Err(Stop::End) => Err(FormatError::Truncated { offset: start }),
            Err(Stop::Corrupt { offset, reason }) => {
                if self.last == 0 && self.first_nonzero_after(self.position)?.is_none() {
                    // A record cut short by a crash, with the file's zero fill after it.
                    Err(FormatError::Truncated { offset: start })
                } else {
                    Err(FormatError::Corrupt { offset, reason })
                }
            }
            Err(Stop::Io(err)) => Err(FormatError::Io(err)),
        }
    }

    /// Consumes the rest of the input, which starts at `offset`, and returns where its
    /// first non-zero byte is, if it has one. `position` stays put: zeros are not data.
    fn first_nonzero_after(&mut self, mut offset: u64) -> io::Result<Option<u64>> {
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            if let Some(at) = buffer.iter().position(|&byte| byte != 0) {
                return Ok(Some(offset + at as u64));
            }
            let length = buffer.len();
            self.input.consume(length);
            offset += length as u64;
        }
    }

    fn record(&mut self) -> Result<Vec<Bytes>, Stop> {
        self.expect(b'*', "expected '*' at the start of a record")?;
        let count = self.number()?;
        if count == 0 {
            return Err(Stop::Corrupt {
                offset: self.position,
                reason: "a record with no arguments",
            });
        }
        let mut args = Vec::with_capacity((count as usize).min(ARGS_PREALLOC_MAX));
        for _ in 0..count {
            self.expect(b'$', "expected '$' before an argument")?;
            let length_at = self.position;
            let length = self.number()?;
            if length > ARGUMENT_MAX_BYTES {
                return Err(Stop::Corrupt {
                    offset: length_at,
                    reason: "argument length beyond the 4 GB limit",
                });
            }
            let mut arg = Vec::new();
            let read = (&mut self.input).take(length).read_to_end(&mut arg)?;
            self.position += read as u64;
            if (read as u64) < length {
                return Err(Stop::End);
            }
            self.expect(b'\r', "expected CRLF after an argument")?;
            self.expect(b'\n', "expected CRLF after an argument")?;
            args.push(Bytes::from(arg));
        }
        Ok(args)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        let buffer = self.input.fill_buf()?;
        let Some(&byte) = buffer.first() else {
            return Err(Stop::End);
        };
        self.input.consume(1);
        self.position += 1;
        self.last = byte;
        Ok(byte)
    }

    fn expect(&mut self, wanted: u8, reason: &'static str) -> Result<(), Stop> {
        let offset = self.position;
        if self.byte()? == wanted {
            Ok(())
        } else {
            Err(Stop::Corrupt { offset, reason })
        }
    }

    /// Decimal digits up to CRLF, as Redis writes them: no sign, no leading zeros.
    fn number(&mut self) -> Result<u64, Stop> {
        let mut value: u64 = 0;
        let mut digits = 0;
        loop {
            let offset = self.position;
            match self.byte()? {
                digit @ b'0'..=b'9' if digits < NUMBER_MAX_DIGITS => {
                    if digits == 1 && value == 0 {
                        return Err(Stop::Corrupt {
                            offset,
                            reason: "a number with a leading zero",
                        });
                    }
                    value = value * 10 + u64::from(digit - b'0');
                    digits += 1;
                }
                b'\r' if digits > 0 => {
                    self.expect(b'\n', "expected LF after CR")?;
                    return Ok(value);
                }
                _ => {
                    return Err(Stop::Corrupt {
                        offset,
                        reason: "expected a decimal length",
                    })
                }
            }
        }
    }
}

fn is_named(args: &[Bytes], name: &[u8]) -> bool {
    args.len() == 1 && args[0].eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(commands: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for command in commands {
            encode_command(&mut out, command);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<AofEntry>, Option<FormatError>) {
        let mut reader = AofReader::new(bytes);
        let mut entries = Vec::new();
        loop {
            match reader.next_entry() {
                Ok(Some((_, entry))) => entries.push(entry),
                Ok(None) => return (entries, None),
                Err(err) => return (entries, Some(err)),
            }
        }
    }

    fn command(words: &[&str]) -> AofEntry {
        AofEntry::Command(words.iter().map(|w| Bytes::from(w.to_string())).collect())
    }

    #[test]
    fn a_zero_filled_tail_is_the_end_of_the_file() {
        let mut bytes = Vec::new();
        encode_command(&mut bytes, &["SET", "k", "v"]);
        let records = bytes.len() as u64;
        bytes.resize(bytes.len() + 100_000, 0);
        let mut reader = AofReader::new(&bytes[..]);
        let (_, first) = reader.next_entry().unwrap().expect("one record");
        assert_eq!(first, command(&["SET", "k", "v"]));
        assert!(reader.next_entry().unwrap().is_none());
        assert_eq!(
            reader.position(),
            records,
            "the zeros are not counted as data"
        );
        // Nothing but zeros: an empty file.
        assert_eq!(read_all(&[0; 10]).0, Vec::new());
    }

    #[test]
    fn data_after_the_zeros_is_corruption_at_its_offset() {
        let mut bytes = Vec::new();
        encode_command(&mut bytes, &["SET", "k", "v"]);
        let zeros_at = bytes.len();
        bytes.resize(zeros_at + 5000, 0);
        encode_command(&mut bytes, &["SET", "k", "w"]);
        let (entries, error) = read_all(&bytes);
        assert_eq!(entries, vec![command(&["SET", "k", "v"])]);
        match error {
            Some(FormatError::Corrupt { offset, .. }) => assert_eq!(offset, zeros_at as u64 + 5000),
            other => panic!("{other:?}"),
        }
        // A record that breaks off on a zero with more data after it is corrupt too.
        let mut bytes = b"*1\r\n$4\r\nPI\0\0\0\0".to_vec();
        bytes.push(b'x');
        assert!(matches!(
            read_all(&bytes).1,
            Some(FormatError::Corrupt { .. })
        ));
    }

    #[test]
    fn encodes_like_redis() {
        assert_eq!(
            encode(&[&["SET", "k", ""]]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
        // Lengths of one digit and of several take different paths.
        let value = "v".repeat(123);
        let args: Vec<&str> = vec!["a"; 10].into_iter().chain([value.as_str()]).collect();
        let mut expected = b"*11\r\n".to_vec();
        expected.extend(b"$1\r\na\r\n".repeat(10));
        expected.extend(format!("$123\r\n{value}\r\n").into_bytes());
        assert_eq!(encode(&[&args]), expected);
    }

    #[test]
    fn reads_commands_and_transactions() {
        let bytes = encode(&[
            &["SELECT", "0"],
            &["MULTI"],
            &["LPUSH", "l", "a"],
            &["LTRIM", "l", "0", "99"],
            &["exec"],
            &["DEL", "x"],
        ]);
        let (entries, error) = read_all(&bytes);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            entries,
            vec![
                command(&["SELECT", "0"]),
                AofEntry::Transaction(vec![
                    vec![Bytes::from("LPUSH"), Bytes::from("l"), Bytes::from("a")],
                    vec![
                        Bytes::from("LTRIM"),
                        Bytes::from("l"),
                        Bytes::from("0"),
                        Bytes::from("99")
                    ],
                ]),
                command(&["DEL", "x"]),
            ]
        );
    }

    #[test]
    fn an_unfinished_transaction_is_a_truncation_at_its_multi() {
        let head = encode(&[&["SET", "a", "1"]]);
        let mut bytes = head.clone();
        bytes.extend(encode(&[&["MULTI"], &["SET", "b", "2"]]));
        let (entries, error) = read_all(&bytes);
        assert_eq!(entries, vec![command(&["SET", "a", "1"])]);
        match error {
            Some(FormatError::Truncated { offset }) => assert_eq!(offset, head.len() as u64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_damage_is_corruption_with_its_offset() {
        let first = encode(&[&["SET", "a", "1"]]);
        let mut bytes = first.clone();
        bytes.extend(encode(&[&["SET", "b", "2"], &["SET", "c", "3"]]));
        // The second record's `$3` becomes `$x`.
        let at = first.len() + 4 + 1;
        bytes[at] = b'x';
        let (entries, error) = read_all(&bytes);
        assert_eq!(entries.len(), 1);
        match error {
            Some(FormatError::Corrupt { offset, .. }) => assert_eq!(offset, at as u64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stray_exec_nested_multi_and_empty_records_are_corrupt() {
        for bytes in [
            encode(&[&["EXEC"]]),
            encode(&[&["MULTI"], &["MULTI"], &["EXEC"]]),
            b"*0\r\n".to_vec(),
            b"*01\r\n$1\r\nx\r\n".to_vec(),
            b"+OK\r\n".to_vec(),
        ] {
            let (_, error) = read_all(&bytes);
            assert!(
                matches!(error, Some(FormatError::Corrupt { .. })),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_huge_declared_length_is_not_allocated() {
        let (_, error) = read_all(b"*1\r\n$4294967295\r\nabc");
        assert!(matches!(error, Some(FormatError::Truncated { offset: 0 })));
        let (_, error) = read_all(b"*1\r\n$99999999999\r\nabc");
        assert!(matches!(
            error,
            Some(FormatError::Corrupt { offset: 5, .. })
        ));
    }

    fn arb_command() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5).prop_filter(
            "not a transaction marker",
            |args| {
                !(args.len() == 1
                    && (args[0].eq_ignore_ascii_case(b"multi")
                        || args[0].eq_ignore_ascii_case(b"exec")))
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips(commands in prop::collection::vec(arb_command(), 0..20)) {
            let mut bytes = Vec::new();
            for command in &commands {
                encode_command(&mut bytes, command);
            }
            let (entries, error) = read_all(&bytes);
            prop_assert!(error.is_none());
            let expected: Vec<AofEntry> = commands
                .iter()
                .map(|c| AofEntry::Command(c.iter().map(|a| Bytes::from(a.clone())).collect()))
                .collect();
            prop_assert_eq!(entries, expected);
        }

        /// Cutting the file anywhere keeps every whole record before the cut and reports
        /// the cut record's start as a truncation, never as corruption; and so does the
        /// same cut followed by the writer's zero fill (a crash under `always`).
        #[test]
        fn any_cut_is_a_clean_truncation(
            commands in prop::collection::vec(arb_command(), 1..10),
            cut in any::<prop::sample::Index>(),
            zeros in prop_oneof![Just(0usize), 1usize..5000],
        ) {
            let mut bytes = Vec::new();
            let mut starts = Vec::new();
            for command in &commands {
                starts.push(bytes.len());
                encode_command(&mut bytes, command);
            }
            let cut = cut.index(bytes.len());
            let mut crashed = bytes[..cut].to_vec();
            crashed.resize(cut + zeros, 0);
            let (entries, error) = read_all(&crashed);
            let ends: Vec<usize> = starts.iter().skip(1).copied().chain([bytes.len()]).collect();
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            prop_assert_eq!(entries.len(), whole);
            match error {
                None => prop_assert!(cut == 0 || ends.contains(&cut)),
                Some(FormatError::Truncated { offset }) => prop_assert_eq!(offset as usize, starts[whole]),
                Some(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
