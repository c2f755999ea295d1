//! Keyspace events: which classes `notify-keyspace-events` enables, and the events
//! operations record for the server to publish.
//!
//! Operations call [`crate::Db::notify`] in the order Redis signals (e.g. `lpop` before
//! the `del` of the emptied list); the database records an event only when its class is
//! enabled, so with notifications off the cost is one bit test. This module never
//! publishes: the server turns [`KeyEvent`]s into `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>` messages.

use bytes::Bytes;

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: expired keys.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: evicted keys.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `d`: module key types.
pub const MODULE: u32 = 1 << 11;
/// `m`: key misses (not part of `A`).
pub const KEY_MISS: u32 = 1 << 12;
/// `n`: new keys (not part of `A`).
pub const NEW: u32 = 1 << 13;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Letters in the order Redis prints them after `A` (or instead of it).
const CLASS_LETTERS: [(u32, char); 10] = [
    (GENERIC, 'g'),
    (STRING, '$'),
    (LIST, 'l'),
    (SET, 's'),
    (HASH, 'h'),
    (ZSET, 'z'),
    (EXPIRED, 'x'),
    (EVICTED, 'e'),
    (STREAM, 't'),
    (MODULE, 'd'),
];

/// Parses a `notify-keyspace-events` value; `None` for an unknown letter.
pub fn parse_flags(text: &str) -> Option<u32> {
    text.chars().try_fold(0, |flags, letter| {
        let bit = match letter {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            'm' => KEY_MISS,
            'n' => NEW,
            _ => CLASS_LETTERS
                .iter()
                .find(|(_, l)| *l == letter)
                .map(|(bit, _)| *bit)?,
        };
        Some(flags | bit)
    })
}

/// The canonical text CONFIG GET shows: `A` or the single classes, then `K`, `E`, `m`, `n`.
pub fn format_flags(flags: u32) -> String {
    let mut text = String::new();
    if flags & ALL == ALL {
        text.push('A');
    } else {
        text.extend(
            CLASS_LETTERS
                .iter()
                .filter(|(bit, _)| flags & bit != 0)
                .map(|(_, letter)| letter),
        );
    }
    for (bit, letter) in [
        (KEYSPACE, 'K'),
        (KEYEVENT, 'E'),
        (KEY_MISS, 'm'),
        (NEW, 'n'),
    ] {
        if flags & bit != 0 {
            text.push(letter);
        }
    }
    text
}

/// The classes a database should record under `flags`: none unless K or E is set.
pub fn recorded_classes(flags: u32) -> u32 {
    if flags & (KEYSPACE | KEYEVENT) == 0 {
        0
    } else {
        flags & !(KEYSPACE | KEYEVENT)
    }
}

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Its class bit.
    pub class: u32,
    /// The event name (`set`, `lpush`, `expired`, ...).
    pub name: &'static str,
    /// The key it concerns.
    pub key: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        format_flags(parse_flags(text).expect("valid flags"))
    }

    #[test]
    fn canonical_order_like_redis() {
        assert_eq!(canonical("gKE"), "gKE");
        assert_eq!(canonical("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(canonical("KA"), "AK");
        assert_eq!(canonical("EA"), "AE");
        assert_eq!(canonical("g$lshzxetdKE"), "AKE");
        assert_eq!(canonical("Kx"), "xK");
        assert_eq!(canonical("AmnKE"), "AKEmn");
        assert_eq!(canonical(""), "");
        assert_eq!(parse_flags("KEQ"), None);
    }

    #[test]
    fn nothing_is_recorded_without_k_or_e() {
        assert_eq!(recorded_classes(parse_flags("A").unwrap_or(0)), 0);
        assert_eq!(recorded_classes(parse_flags("Kl").unwrap_or(0)), LIST);
    }
}
