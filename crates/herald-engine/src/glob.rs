//! Redis glob patterns: compile once, match many times.
//!
//! This module owns the exact byte-level semantics of Redis's `stringmatchlen`
//! (`src/util.c`, case-sensitive mode) as used by PSUBSCRIBE, PUBSUB CHANNELS,
//! KEYS and SCAN MATCH: `*`, `?`, `[...]`, `[^...]`, ranges, `\` escapes and
//! every quirk of how Redis reads a malformed pattern. Every byte string is a
//! valid pattern, so compiling never fails.
//!
//! It must not recurse or take exponential time (patterns come from clients),
//! must not allocate while matching (it runs on the publish hot path), and must
//! not "fix" Redis: where Redis behaves oddly we copy the oddity, and the test
//! that pins it down names the util.c line responsible.
//!
//! Matching is the classic two-pointer walk that backtracks only to the most
//! recent `*`: every other token consumes exactly one byte, so giving an
//! earlier star more bytes can never help once a later star has been reached.
//! That bounds a match at O(pattern tokens × subject bytes).

#[cfg(test)]
mod reference;

/// Redis gives up on a pattern whose matching has to recurse through more
/// than this many `*` groups (util.c: `if (nesting > 1000) return 0;`, its
/// "protection against abusive patterns"). We do not recurse, but we copy the
/// verdict: reaching star group number 1001 while the subject still has bytes
/// means no match, even where the glob would otherwise match.
const REDIS_MAX_STAR_NESTING: usize = 1000;

/// A set of bytes, one bit per byte value: a `[...]` class with any negation
/// already applied, so matching is one bit test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    /// Adds the range between two endpoints in either order. Redis compares
    /// plain `char`s, which are signed on x86-64, so `[a-\xff]` is the range
    /// -1..=97: it holds 0xff and 0x00..=0x61, not 0x61..=0xff. (On aarch64
    /// Linux `char` is unsigned and Redis itself gives the other answer; we
    /// follow x86-64, where our differential test runs.)
    fn insert_range(&mut self, start: u8, end: u8) {
        // Reinterpreting as i8 is the point: it mirrors C's signed char.
        let (start, end) = (start as i8, end as i8);
        for c in start.min(end)..=start.max(end) {
            self.insert(c as u8);
        }
    }

    fn complement(self) -> ByteSet {
        let [a, b, c, d] = self.0;
        ByteSet([!a, !b, !c, !d])
    }

    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }
}

/// One step of a compiled pattern. Everything but `Star` consumes one byte.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A byte matched exactly (escapes already resolved).
    Literal(u8),
    /// `?`: any one byte.
    AnyByte,
    /// A run of one or more `*`: any number of bytes.
    Star,
    /// `[...]` or `[^...]`: one byte from the set.
    Class(ByteSet),
}

impl Token {
    fn accepts(&self, byte: u8) -> bool {
        match self {
            Token::Literal(expected) => *expected == byte,
            Token::AnyByte => true,
            Token::Star => false,
            Token::Class(set) => set.contains(byte),
        }
    }
}

/// A Redis glob compiled once, matched many times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<[u8]>,
    tokens: Box<[Token]>,
    /// Leading `Literal` bytes, kept contiguous so the pattern index can use
    /// them as a trie key without rebuilding them.
    prefix: Box<[u8]>,
    /// Trailing `Literal` bytes after the last wildcard (empty for a pattern without
    /// wildcards, whose bytes are all in `prefix`), for indexing `*suffix` patterns.
    suffix: Box<[u8]>,
    /// Index in `tokens` of star group `REDIS_MAX_STAR_NESTING + 1`, or
    /// `usize::MAX` when the pattern has fewer star groups.
    first_star_past_nesting_limit: usize,
}

impl Glob {
    /// Compiles `pattern`. Never fails: every byte string is a valid Redis
    /// pattern, malformed classes and escapes included.
    pub fn new(pattern: &[u8]) -> Glob {
        let tokens = compile(pattern);
        let prefix = tokens
            .iter()
            .map_while(|token| match token {
                Token::Literal(byte) => Some(*byte),
                _ => None,
            })
            .collect::<Box<[u8]>>();
        let suffix = if prefix.len() == tokens.len() {
            Box::default()
        } else {
            let mut suffix: Vec<u8> = tokens
                .iter()
                .rev()
                .map_while(|token| match token {
                    Token::Literal(byte) => Some(*byte),
                    _ => None,
                })
                .collect();
            suffix.reverse();
            suffix.into_boxed_slice()
        };
        let first_star_past_nesting_limit = tokens
            .iter()
            .enumerate()
            .filter(|(_, token)| **token == Token::Star)
            .nth(REDIS_MAX_STAR_NESTING)
            .map_or(usize::MAX, |(index, _)| index);
        Glob {
            pattern: pattern.into(),
            tokens: tokens.into(),
            prefix,
            suffix,
            first_star_past_nesting_limit,
        }
    }

    /// The pattern exactly as given to [`Glob::new`].
    pub fn pattern(&self) -> &[u8] {
        &self.pattern
    }

    /// Whether `subject` matches, with Redis's verdict in every case.
    pub fn matches(&self, subject: &[u8]) -> bool {
        // util.c loops `while(patternLen && stringLen)` and then demands both
        // be exhausted, so an empty subject matches only the empty pattern:
        // even `*` does not match "" (PUBLISH "" reaches no `*` subscriber).
        if subject.is_empty() {
            return self.tokens.is_empty();
        }
        let tokens = &self.tokens[..];
        let (mut p, mut s) = (0, 0);
        // Where to resume after a mismatch: the token after the most recent
        // star, and the subject offset that star's run currently ends at.
        let mut resume: Option<(usize, usize)> = None;
        while let Some(&byte) = subject.get(s) {
            match tokens.get(p) {
                Some(Token::Star) => {
                    if p + 1 == tokens.len() {
                        return true; // A trailing star swallows the rest.
                    }
                    if p >= self.first_star_past_nesting_limit {
                        return false; // Redis's nesting guard gives up here.
                    }
                    p += 1;
                    resume = Some((p, s));
                    continue;
                }
                Some(token) if token.accepts(byte) => {
                    p += 1;
                    s += 1;
                    continue;
                }
                _ => {}
            }
            // Mismatch (or pattern exhausted): let the last star take one more byte.
            match resume {
                Some((star_p, star_s)) => {
                    p = star_p;
                    s = star_s + 1;
                    resume = Some((star_p, s));
                }
                None => return false,
            }
        }
        // Subject consumed: only stars may remain (util.c skips `*` bytes then
        // requires patternLen == 0).
        tokens[p..].iter().all(|token| *token == Token::Star)
    }

    /// Bytes every matching subject must start with (the literal run before
    /// the first wildcard, escapes resolved).
    pub fn literal_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Bytes every matching subject must end with (the literal run after the last
    /// wildcard, escapes resolved); empty when the pattern has no wildcard, since
    /// [`Glob::literal_prefix`] then holds it all.
    pub fn literal_suffix(&self) -> &[u8] {
        &self.suffix
    }

    /// True when the pattern has no wildcard at all (matches exactly one
    /// string: [`Glob::literal_prefix`]). A one-byte class such as `[a]`
    /// counts as a wildcard here.
    pub fn is_literal(&self) -> bool {
        self.prefix.len() == self.tokens.len()
    }
}

/// Reads the pattern the way util.c's main loop does, emitting one token per
/// pattern element. Reads past the end of a Redis pattern see the sds NUL
/// terminator, which never equals `*`, `^`, `]` or `\`; `get` returning `None`
/// plays that role here.
fn compile(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while let Some(&byte) = pattern.get(i) {
        i += 1;
        let token = match byte {
            // `while (patternLen && pattern[1] == '*')`: a run of stars is one.
            b'*' if tokens.last() == Some(&Token::Star) => continue,
            b'*' => Token::Star,
            b'?' => Token::AnyByte,
            b'[' => {
                let (set, next) = compile_class(pattern, i);
                i = next;
                Token::Class(set)
            }
            // `if (patternLen >= 2) pattern++`: a trailing lone `\` is literal.
            b'\\' => match pattern.get(i) {
                Some(&escaped) => {
                    i += 1;
                    Token::Literal(escaped)
                }
                None => Token::Literal(b'\\'),
            },
            other => Token::Literal(other),
        };
        tokens.push(token);
    }
    tokens
}

/// Compiles the class whose body starts at `i` (just after `[`); returns the
/// set and the index after the class. Mirrors util.c's `case '['` branch by
/// branch and in the same order, since the order decides odd inputs.
fn compile_class(pattern: &[u8], mut i: usize) -> (ByteSet, usize) {
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut set = ByteSet::EMPTY;
    loop {
        match (pattern.get(i), pattern.get(i + 1), pattern.get(i + 2)) {
            // `patternLen == 0`: an unterminated class runs to the end.
            (None, _, _) => break,
            // `pattern[0] == '\\' && patternLen >= 2`: escaped member. Checked
            // before `]`, so `[\]]` holds `]`.
            (Some(b'\\'), Some(&escaped), _) => {
                set.insert(escaped);
                i += 2;
            }
            // `]` closes the class, even as its first byte: `[]` is empty.
            (Some(b']'), _, _) => {
                i += 1;
                break;
            }
            // `patternLen >= 3 && pattern[1] == '-'`: a range, whose end may
            // be `]` or `\` taken literally (`[a-]` is the range `]`..`a`, and
            // the class goes on).
            (Some(&start), Some(b'-'), Some(&end)) => {
                set.insert_range(start, end);
                i += 3;
            }
            (Some(&member), _, _) => {
                set.insert(member);
                i += 1;
            }
        }
    }
    (if negated { set.complement() } else { set }, i)
}

#[cfg(test)]
mod tests {
    use super::reference::redis_stringmatchlen;
    use super::*;
    use proptest::prelude::*;

    /// Asserts Glob and the util.c transliteration agree with `expected`.
    fn check(pattern: &[u8], subject: &[u8], expected: bool) {
        let got = Glob::new(pattern).matches(subject);
        let reference = redis_stringmatchlen(pattern, subject);
        assert_eq!(
            (got, reference),
            (expected, expected),
            "pattern {:?} subject {:?}: (glob, reference)",
            pattern.escape_ascii().to_string(),
            subject.escape_ascii().to_string(),
        );
    }

    fn yes(pattern: &[u8], subjects: &[&[u8]]) {
        subjects.iter().for_each(|s| check(pattern, s, true));
    }

    fn no(pattern: &[u8], subjects: &[&[u8]]) {
        subjects.iter().for_each(|s| check(pattern, s, false));
    }

    #[test]
    fn literals_and_question_mark() {
        yes(b"foo", &[b"foo"]);
        no(b"foo", &[b"fo", b"fooo", b"Foo", b""]);
        yes(b"f?o", &[b"foo", b"f\xffo", b"f\0o"]);
        no(b"f?o", &[b"fo", b"fooo"]);
        yes(b"foo.*", &[b"foo.1", b"foo.", b"foo.bar.baz"]);
        no(b"foo.*", &[b"foo1", b"barfoo.1", b"foo"]);
    }

    #[test]
    fn stars() {
        yes(b"*", &[b"a", b"anything at all"]);
        yes(b"***", &[b"a", b"abc"]);
        yes(b"a*b*c", &[b"abc", b"aXbYc", b"abbbcc", b"acbc"]);
        no(b"a*b*c", &[b"ab", b"acb", b"abcx"]);
        yes(b"*?*", &[b"a", b"abc"]);
        yes(b"*a", &[b"a", b"ba", b"aaa"]);
        no(b"*a", &[b"ab"]);
        // The subject ran out: only trailing stars may remain.
        yes(b"ab**", &[b"ab"]);
        no(b"ab*?", &[b"ab"]);
        no(b"ab*c*", &[b"ab"]);
    }

    #[test]
    fn empty_subject_matches_only_empty_pattern() {
        // util.c: `while(patternLen && stringLen)`, then
        // `if (patternLen == 0 && stringLen == 0) return 1;`
        yes(b"", &[b""]);
        no(b"", &[b"a"]);
        no(b"*", &[b""]);
        no(b"**", &[b""]);
        no(b"[^", &[b""]);
    }

    #[test]
    fn classes_and_ranges() {
        yes(b"h[ae]llo", &[b"hallo", b"hello"]);
        no(b"h[ae]llo", &[b"hillo", b"hllo"]);
        yes(b"h[^e]llo", &[b"hallo", b"h\xffllo"]);
        no(b"h[^e]llo", &[b"hello", b"hllo"]);
        yes(b"[a-c]", &[b"a", b"b", b"c"]);
        no(b"[a-c]", &[b"d", b"`"]);
        // Reversed ranges are swapped.
        yes(b"[z-a]", &[b"a", b"m", b"z"]);
        no(b"[^z-a]", &[b"m"]);
        yes(b"[-a]", &[b"-", b"a"]);
        yes(b"[a-c-e]", &[b"b", b"-", b"e"]);
        no(b"[a-c-e]", &[b"d"]);
    }

    #[test]
    fn ranges_compare_signed_chars() {
        // `int start = pattern[0]` copies a signed char: 0xff is -1, so the
        // swapped range is -1..=97 (0xff and 0x00..=0x61). Checked against
        // redis-server 7.0.15 on x86-64.
        yes(b"[a-\xff]", &[b"\xff", b"\0", b"a"]);
        no(b"[a-\xff]", &[b"b", b"\x80", b"\x7f"]);
        yes(b"[\x7f-\x80]", &[b"z", b"\0", b"\x80", b"\xff"]);
    }

    #[test]
    fn degenerate_classes() {
        // `]` right after `[` closes an empty class: matches nothing.
        no(b"[]", &[b"]", b"a", b""]);
        no(b"[]a]", &[b"a", b"]", b"a]", b"xa]"]);
        // ...and negated, everything.
        yes(b"[^]", &[b"a", b"]", b"\0"]);
        yes(b"[^]a]", &[b"xa]", b"]a]"]);
        no(b"[^]a]", &[b"x"]);
        // Unterminated: the class runs to the end of the pattern.
        yes(b"[abc", &[b"a", b"c"]);
        no(b"[abc", &[b"[", b"ab"]);
        no(b"[", &[b"[", b"a"]);
        yes(b"[^", &[b"a", b"^", b"["]);
        yes(b"[a-", &[b"a", b"-"]);
        no(b"[a-", &[b"b"]);
        // `[a-]` is the range `]`..=`a` and the class never closes.
        yes(b"[a-]", &[b"]", b"^", b"_", b"`", b"a"]);
        no(b"[a-]", &[b"b", b"-"]);
        no(b"[a-]b", &[b"ab"]);
        yes(b"[a-]b", &[b"b"]);
    }

    #[test]
    fn escapes() {
        yes(b"\\*", &[b"*"]);
        no(b"\\*", &[b"a", b"\\*"]);
        yes(b"\\?\\[\\\\", &[b"?[\\"]);
        yes(b"\\a", &[b"a"]);
        // A trailing lone `\` is a literal backslash.
        yes(b"foo\\", &[b"foo\\"]);
        no(b"foo\\", &[b"foo"]);
        // Escapes inside classes, checked before `]`.
        yes(b"[\\]]", &[b"]"]);
        no(b"[\\]]", &[b"\\", b"\\]"]);
        yes(b"[\\-a]", &[b"-", b"a"]);
        no(b"[\\-a]", &[b"\\"]);
        // `\` as the last byte of an unterminated class is a member.
        yes(b"[a\\", &[b"a", b"\\"]);
        // A range endpoint is never an escape: `[\\-a]` vs `[!-\\]`.
        yes(b"[!-\\]", &[b"!", b"A", b"\\"]);
    }

    #[test]
    fn nesting_guard_matches_redis() {
        // util.c: `if (nesting > 1000) return 0;`, one level per star group.
        // Verified against redis-server: 1000 groups match, 1001 do not.
        let groups = |n: usize| b"*a".repeat(n);
        let a = |n: usize| vec![b'a'; n];
        check(&groups(1000), &a(1000), true);
        check(&groups(1000), &a(1001), true);
        check(&groups(1001), &a(1001), false);
        check(&[groups(1001), b"*".to_vec()].concat(), &a(1004), false);
        // A trailing star never recurses, so it is not counted.
        check(&[groups(1000), b"*".to_vec()].concat(), &a(1003), true);
        // Consecutive stars are one group.
        check(&b"**a".repeat(1000), &a(1000), true);
        // The string ran out before group 1001: no recursion, no guard.
        check(&[groups(1000), b"*****".to_vec()].concat(), &a(1000), true);
    }

    #[test]
    fn pathological_patterns_finish() {
        let started = std::time::Instant::now();
        // keyspace.tcl "Regression for pattern matching long nested loops".
        let glob = Glob::new(b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!glob.matches(&[b'a'; 40]));
        assert!(!glob.matches(&[b'a'; 10_000]));
        let mut ab = vec![b'a'; 10_000];
        ab.push(b'b');
        assert!(glob.matches(&ab));
        // "... very long nested loops": Redis's nesting guard says no.
        let glob = Glob::new(&b"*?".repeat(50_000));
        assert!(!glob.matches(&[b'a'; 50_000]));
        // Many classes and stars against a long near-miss.
        let glob = Glob::new(&b"*[a-c]".repeat(500));
        assert!(!glob.matches(&[b'a'; 400]));
        // Generous: catches exponential blow-up, not a benchmark.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn prefix_and_literal() {
        let glob = Glob::new(b"news.\\*sport[s]*");
        assert_eq!(glob.literal_prefix(), b"news.*sport");
        assert!(!glob.is_literal());
        assert_eq!(glob.pattern(), b"news.\\*sport[s]*");
        let glob = Glob::new(b"a\\?b\\");
        assert_eq!(glob.literal_prefix(), b"a?b\\");
        assert!(glob.is_literal());
        assert!(Glob::new(b"").is_literal());
        assert_eq!(Glob::new(b"*abc").literal_prefix(), b"");
        assert!(!Glob::new(b"[a]").is_literal());
    }

    #[test]
    fn suffix_is_the_literal_run_after_the_last_wildcard() {
        assert_eq!(Glob::new(b"*:tag:p5").literal_suffix(), b":tag:p5");
        assert_eq!(Glob::new(b"a*b?c\\\\d").literal_suffix(), b"c\\d");
        assert_eq!(Glob::new(b"news.*").literal_suffix(), b"");
        assert_eq!(Glob::new(b"[a]bc").literal_suffix(), b"bc");
        // No wildcard: the prefix holds every byte and the suffix stays empty.
        assert_eq!(Glob::new(b"plain").literal_suffix(), b"");
    }

    /// Bytes that exercise every special case, plus a signed-char edge.
    fn pattern_byte() -> impl Strategy<Value = u8> {
        prop::sample::select(b"*?[]^-\\abc\xff".to_vec())
    }

    fn subject_byte() -> impl Strategy<Value = u8> {
        prop::sample::select(b"abc-]^*\\\xff".to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_reference(
            pattern in prop::collection::vec(pattern_byte(), 0..14),
            subject in prop::collection::vec(subject_byte(), 0..10),
        ) {
            prop_assert_eq!(
                Glob::new(&pattern).matches(&subject),
                redis_stringmatchlen(&pattern, &subject)
            );
        }

        #[test]
        fn agrees_with_reference_on_any_bytes(
            pattern in prop::collection::vec(any::<u8>(), 0..10),
            subject in prop::collection::vec(any::<u8>(), 0..6),
        ) {
            prop_assert_eq!(
                Glob::new(&pattern).matches(&subject),
                redis_stringmatchlen(&pattern, &subject)
            );
        }

        #[test]
        fn matches_start_with_literal_prefix(
            pattern in prop::collection::vec(pattern_byte(), 0..14),
            suffix in prop::collection::vec(subject_byte(), 0..8),
        ) {
            let glob = Glob::new(&pattern);
            // Built from the prefix so that matches are common, not rare.
            let subject = [glob.literal_prefix(), &suffix].concat();
            let ending = [&suffix[..], glob.literal_suffix()].concat();
            for s in [&subject, &suffix, &ending] {
                if glob.matches(s) {
                    prop_assert!(s.starts_with(glob.literal_prefix()));
                    prop_assert!(s.ends_with(glob.literal_suffix()));
                }
                if glob.is_literal() {
                    prop_assert_eq!(glob.matches(s), &s[..] == glob.literal_prefix());
                }
            }
            prop_assert_eq!(glob.pattern(), &pattern[..]);
        }
    }
}
