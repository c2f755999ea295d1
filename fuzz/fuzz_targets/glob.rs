#![no_main]
//! Differential fuzzing of `herald_engine::Glob` against a line-by-line
//! transliteration of Redis's `stringmatchlen` (the same file the unit tests
//! use, included by path so the two oracles cannot drift apart).
//!
//! Input layout: the first byte is the pattern length, the next that many
//! bytes are the pattern, and the rest (capped) is the subject.

use herald_engine::Glob;
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/herald-engine/src/glob/reference.rs"]
mod reference;

/// Keeps each run fast: the oracle recurses per star group and backtracks
/// over the subject, so both sides stay small. Patterns are at most 255 bytes
/// by construction (one length byte).
const MAX_SUBJECT_BYTES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&pattern_len, rest)) = data.split_first() else {
        return;
    };
    let (pattern, subject) = rest.split_at(usize::from(pattern_len).min(rest.len()));
    let subject = &subject[..subject.len().min(MAX_SUBJECT_BYTES)];

    let glob = Glob::new(pattern);
    let matched = glob.matches(subject);
    assert_eq!(
        matched,
        reference::redis_stringmatchlen(pattern, subject),
        "pattern {:?} subject {:?}",
        pattern.escape_ascii().to_string(),
        subject.escape_ascii().to_string(),
    );
    assert_eq!(glob.pattern(), pattern);
    if matched {
        assert!(subject.starts_with(glob.literal_prefix()));
    }
    if glob.is_literal() {
        assert_eq!(matched, subject == glob.literal_prefix());
    }
});
