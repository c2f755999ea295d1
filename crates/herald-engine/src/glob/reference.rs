//! Test oracle: a line-by-line Rust transliteration of Redis's recursive
//! `stringmatchlen_impl` (`src/util.c`, Redis 7.x, `nocase = 0`), kept
//! deliberately close to the C so that it is obviously faithful.
//!
//! Only tests and the fuzz target use it (`fuzz/fuzz_targets/glob.rs`
//! includes this file by path, so the two oracles cannot drift apart). It
//! recurses once per `*` group, bounded by Redis's own nesting guard of 1000.

/// `stringmatchlen(pattern, patternLen, string, stringLen, 0)`.
pub fn redis_stringmatchlen(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer_matches = false;
    stringmatchlen_impl(pattern, string, &mut skip_longer_matches, 0)
}

/// `pattern[i]` in C: a read past the end of a Redis string lands on the sds
/// NUL terminator.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// `(int)(char)byte` on x86-64, where `char` is signed.
fn signed(byte: u8) -> i32 {
    i32::from(byte as i8)
}

/// `p`/`s` play the C pointers `pattern`/`string`; `plen`/`slen` play
/// `patternLen`/`stringLen`.
fn stringmatchlen_impl(
    pattern: &[u8],
    string: &[u8],
    skip_longer_matches: &mut bool,
    nesting: u32,
) -> bool {
    // Protection against abusive patterns.
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0, 0);
    let (mut plen, mut slen) = (pattern.len(), string.len());

    while plen != 0 && slen != 0 {
        match at(pattern, p) {
            b'*' => {
                while plen != 0 && at(pattern, p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true; // match
                }
                while slen != 0 {
                    let rest = &pattern[p + 1..];
                    if stringmatchlen_impl(rest, &string[s..], skip_longer_matches, nesting + 1) {
                        return true; // match
                    }
                    if *skip_longer_matches {
                        return false; // no match
                    }
                    s += 1;
                    slen -= 1;
                }
                *skip_longer_matches = true;
                return false; // no match
            }
            b'?' => {
                s += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                loop {
                    if at(pattern, p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(pattern, p) == at(string, s) {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(pattern, p + 1) == b'-' {
                        let mut start = signed(at(pattern, p));
                        let mut end = signed(at(pattern, p + 2));
                        let c = signed(at(string, s));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if at(pattern, p) == at(string, s) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false; // no match
                }
                s += 1;
                slen -= 1;
            }
            byte => {
                // case '\\': skip the backslash, then fall through to default.
                if byte == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                }
                if at(pattern, p) != at(string, s) {
                    return false; // no match
                }
                s += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(pattern, p) == b'*' {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}
