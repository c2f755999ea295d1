//! Splitting an inline request line into words, as Redis `sdssplitargs` (`src/sds.c`)
//! does, so that `redis-cli`-style and telnet input means the same thing to Herald.
//!
//! This module owns the word rules only; finding the line and its limits belong to the
//! parser. The rules, all from `sdssplitargs`:
//! - Words are separated by blanks (C `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`),
//!   but only space, `\t`, `\n` and `\r` end an unquoted word (`a\vb` is one word).
//! - `"..."` understands `\n \r \t \b \a`, `\xHH` (two hex digits) and `\` before any
//!   other byte (that byte); `'...'` understands `\'` only.
//! - A quote may open in the middle of a word (`a"b c"` is `ab c`), but a closing quote
//!   must be followed by a blank or the end of the line; otherwise, and for an
//!   unterminated quote, the line is rejected with "unbalanced quotes".
//! - The line is read as a C string: a NUL byte ends it.
//!
//! It must not copy a word whose bytes are unchanged: such a word is returned as a range
//! of the line, later sliced out of the request's frozen buffer.

use std::ops::Range;

use bytes::Bytes;

use super::ProtocolError;

/// One word of an inline line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Word {
    /// The word is these bytes of the line, unchanged.
    Slice(Range<usize>),
    /// Quoting or escapes changed the bytes: a decoded copy.
    Owned(Vec<u8>),
}

impl Default for Word {
    fn default() -> Self {
        Word::Slice(0..0)
    }
}

impl Word {
    /// Appends the line's own byte at `at`, staying a slice while the word is contiguous.
    fn push_source(&mut self, line: &[u8], at: usize) {
        match self {
            Word::Slice(range) if range.start == range.end => *range = at..at + 1,
            Word::Slice(range) if range.end == at => range.end += 1,
            _ => self.push_decoded(line, line.get(at).copied().unwrap_or_default()),
        }
    }

    /// Appends a byte that is not the next byte of the line.
    fn push_decoded(&mut self, line: &[u8], byte: u8) {
        if let Word::Slice(range) = self {
            let copied = line.get(range.clone()).unwrap_or_default().to_vec();
            *self = Word::Owned(copied);
        }
        if let Word::Owned(bytes) = self {
            bytes.push(byte);
        }
    }

    /// The word as `Bytes`: a slice of `frozen` (the request's bytes, which start with the
    /// line) or the decoded copy.
    pub(super) fn into_bytes(self, frozen: &Bytes) -> Bytes {
        match self {
            Word::Slice(range) if range.end <= frozen.len() => frozen.slice(range),
            Word::Slice(_) => Bytes::new(),
            Word::Owned(bytes) => Bytes::from(bytes),
        }
    }
}

/// C `isspace` in the C locale (Redis never sets `LC_CTYPE`).
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(byte: Option<u8>) -> Option<u8> {
    match byte? {
        digit @ b'0'..=b'9' => Some(digit - b'0'),
        letter @ b'a'..=b'f' => Some(letter - b'a' + 10),
        letter @ b'A'..=b'F' => Some(letter - b'A' + 10),
        _ => None,
    }
}

/// The byte that `\<escaped>` stands for inside double quotes.
fn unescape(escaped: u8) -> u8 {
    match escaped {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

/// Splits `line` (without its line end) into words; no words for a blank line.
pub(super) fn split(line: &[u8]) -> Result<Vec<Word>, ProtocolError> {
    // `sdssplitargs` walks a C string: nothing from the first NUL on exists for it.
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let at = |i: usize| line.get(i).copied();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_blank) {
            i += 1;
        }
        if at(i).is_none() {
            return Ok(words);
        }
        let mut word = Word::default();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let byte = at(i);
            if in_double {
                match byte {
                    Some(b'\\') if at(i + 1) == Some(b'x') => {
                        match (hex_value(at(i + 2)), hex_value(at(i + 3))) {
                            (Some(high), Some(low)) => {
                                word.push_decoded(line, high * 16 + low);
                                i += 3;
                            }
                            // Not `\xHH`: `\x` is just `x`, as for any other escape.
                            _ => {
                                word.push_decoded(line, b'x');
                                i += 1;
                            }
                        }
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        word.push_decoded(line, unescape(at(i).unwrap_or_default()));
                    }
                    Some(b'"') => {
                        if at(i + 1).is_some_and(|next| !is_blank(next)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(_) => word.push_source(line, i),
                }
            } else if in_single {
                match byte {
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        i += 1;
                        word.push_decoded(line, b'\'');
                    }
                    Some(b'\'') => {
                        if at(i + 1).is_some_and(|next| !is_blank(next)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(_) => word.push_source(line, i),
                }
            } else {
                match byte {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        i += 1;
                        break;
                    }
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(_) => word.push_source(line, i),
                }
            }
            i += 1;
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `line`, decoded.
    fn words(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let frozen = Bytes::copy_from_slice(line);
        Ok(split(line)?
            .into_iter()
            .map(|word| word.into_bytes(&frozen).to_vec())
            .collect())
    }

    fn ok(line: &[u8]) -> Vec<Vec<u8>> {
        words(line).unwrap()
    }

    #[test]
    fn splits_on_blanks() {
        assert_eq!(
            ok(b"SET  k\tv"),
            [b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]
        );
        assert_eq!(ok(b"  \x0b\x0c PING \r"), [b"PING".to_vec()]);
        assert!(ok(b"").is_empty());
        assert!(ok(b" \t\r ").is_empty());
    }

    #[test]
    fn vertical_tab_and_form_feed_do_not_end_a_word() {
        assert_eq!(
            ok(b"a\x0bb c\x0cd"),
            [b"a\x0bb".to_vec(), b"c\x0cd".to_vec()]
        );
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(ok(br#""hello world""#), [b"hello world".to_vec()]);
        assert_eq!(ok(br#""\x41\x4a\x6b""#), [b"AJk".to_vec()]);
        assert_eq!(
            ok(br#""\n\r\t\b\a\\\"\q""#),
            [b"\n\r\t\x08\x07\\\"q".to_vec()]
        );
        // `\x` without two hex digits is a plain escape of `x`.
        assert_eq!(ok(br#""\x4g""#), [b"x4g".to_vec()]);
        assert_eq!(ok(br#""""#), [b"".to_vec()]);
        assert_eq!(
            ok(br#"a "" b"#),
            [b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn single_quotes() {
        assert_eq!(ok(br"'it\'s \n'"), [b"it's \\n".to_vec()]);
        assert_eq!(ok(br"'a\b'"), [b"a\\b".to_vec()]);
    }

    #[test]
    fn quote_may_open_inside_a_word() {
        assert_eq!(ok(br#"a"b c" d"#), [b"ab c".to_vec(), b"d".to_vec()]);
        assert_eq!(ok(br"x'y z'"), [b"xy z".to_vec()]);
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [
            &br#""abc"#[..],
            br"'abc",
            br#""abc"def"#,
            br"'abc'def",
            br#""abc\""#,
            br#"ok "trailing\"#,
        ] {
            assert_eq!(
                words(line),
                Err(ProtocolError::UnbalancedQuotes),
                "{line:?}"
            );
        }
        // A closing quote may be followed by any blank, `\v` included.
        assert_eq!(ok(b"\"a\"\x0bb"), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(ok(b"GET k\0ignored"), [b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(words(b"\"k\0\""), Err(ProtocolError::UnbalancedQuotes));
        assert!(ok(b"\0PING").is_empty());
    }

    #[test]
    fn unchanged_words_are_slices() {
        let split = split(br#"GET "key" 'a\'b' "x\x41""#).unwrap();
        assert_eq!(split[0], Word::Slice(0..3));
        assert_eq!(split[1], Word::Slice(5..8));
        assert_eq!(split[2], Word::Owned(b"a'b".to_vec()));
        assert_eq!(split[3], Word::Owned(b"xA".to_vec()));
    }

    #[test]
    fn high_bytes_are_not_blanks() {
        assert_eq!(ok(b"\xa0\x85 x"), [b"\xa0\x85".to_vec(), b"x".to_vec()]);
    }
}
