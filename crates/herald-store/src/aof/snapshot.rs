//! The keyspace as a sequence of commands: what a rewrite writes to the new file.
//!
//! [`Snapshot::take`] copies every live key (value and expiry) while the caller holds the
//! keyspace lock; [`Snapshot::write_to`] then encodes the copy without the lock, so writes
//! go on meanwhile. The copy costs memory for as long as the rewrite runs (values share
//! nothing with the live keyspace); what it buys is a pause bounded by a memory copy
//! instead of by disk speed. Each key becomes the fewest commands that rebuild it:
//! `SET` (with `PXAT` when it expires), or `RPUSH`/`HSET` in batches of
//! [`ITEMS_PER_COMMAND`] followed by `PEXPIREAT`, as Redis's rewrite does; a stream as
//! its entries, counters, groups, consumers and pending entries
//! ([`crate::stream::propagate::rebuild_records`]).

use std::io::{self, Write};

use bytes::Bytes;

use super::format::encode_command;
use crate::keyspace::Keyspace;
use crate::value::Value;

/// Elements per RPUSH/HSET command (Redis: `AOF_REWRITE_ITEMS_PER_CMD`).
pub const ITEMS_PER_COMMAND: usize = 64;

/// Bytes encoded before they are handed to the writer.
const FLUSH_BYTES: usize = 1 << 20;

/// One key as copied: name, value, expiry (Unix milliseconds).
pub type CopiedKey = (Bytes, Value, Option<u64>);

/// A copy of the live keys of every database.
#[derive(Debug, Default)]
pub struct Snapshot {
    databases: Vec<(usize, Vec<CopiedKey>)>,
}

impl Snapshot {
    /// Copies every key that is live at `now_ms`.
    pub fn take(keyspace: &Keyspace, now_ms: u64) -> Snapshot {
        let databases = keyspace
            .dbs()
            .iter()
            .enumerate()
            .filter(|(_, db)| !db.is_empty())
            .map(|(index, db)| (index, db.live_entries(now_ms)))
            .filter(|(_, entries)| !entries.is_empty())
            .collect();
        Snapshot { databases }
    }

    /// Keys copied.
    pub fn len(&self) -> usize {
        self.databases.iter().map(|(_, keys)| keys.len()).sum()
    }

    /// True when no key was live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the commands that rebuild the copy.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut buffer = Vec::with_capacity(FLUSH_BYTES);
        let mut number = itoa::Buffer::new();
        for (index, keys) in &self.databases {
            encode_command(&mut buffer, &[b"SELECT", number.format(*index).as_bytes()]);
            for (key, value, expires_at) in keys {
                encode_key(&mut buffer, key, value, *expires_at);
                if buffer.len() >= FLUSH_BYTES {
                    out.write_all(&buffer)?;
                    buffer.clear();
                }
            }
        }
        out.write_all(&buffer)?;
        out.flush()
    }
}

fn encode_key(out: &mut Vec<u8>, key: &Bytes, value: &Value, expires_at: Option<u64>) {
    let mut number = itoa::Buffer::new();
    match value {
        Value::String(bytes) => {
            let at = expires_at.map(|at| number.format(at).to_owned());
            match &at {
                Some(at) => encode_command(out, &[b"SET", &key[..], bytes, b"PXAT", at.as_bytes()]),
                None => encode_command(out, &[b"SET", &key[..], bytes]),
            }
            return;
        }
        Value::List(list) => {
            let mut args: Vec<&[u8]> = Vec::with_capacity(ITEMS_PER_COMMAND + 2);
            for element in list.iter() {
                if args.is_empty() {
                    args.extend_from_slice(&[b"RPUSH", &key[..]]);
                }
                args.push(element);
                if args.len() == ITEMS_PER_COMMAND + 2 {
                    encode_command(out, &args);
                    args.clear();
                }
            }
            if !args.is_empty() {
                encode_command(out, &args);
            }
        }
        Value::Hash(hash) => {
            let mut args: Vec<&[u8]> = Vec::with_capacity(2 * ITEMS_PER_COMMAND + 2);
            for (field, value) in hash.iter() {
                if args.is_empty() {
                    args.extend_from_slice(&[b"HSET", &key[..]]);
                }
                args.push(field);
                args.push(value);
                if args.len() == 2 * ITEMS_PER_COMMAND + 2 {
                    encode_command(out, &args);
                    args.clear();
                }
            }
            if !args.is_empty() {
                encode_command(out, &args);
            }
        }
        Value::Stream(stream) => {
            for record in crate::stream::propagate::rebuild_records(stream, key) {
                encode_command(out, &record);
            }
        }
    }
    if let Some(at) = expires_at {
        encode_command(out, &[b"PEXPIREAT", &key[..], number.format(at).as_bytes()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::format::{AofEntry, AofReader};
    use crate::{hashes, lists, strings};

    fn k(text: &str) -> Bytes {
        Bytes::from(text.to_owned())
    }

    fn commands(snapshot: &Snapshot) -> Vec<Vec<String>> {
        let mut bytes = Vec::new();
        snapshot.write_to(&mut bytes).unwrap();
        let mut reader = AofReader::new(&bytes[..]);
        let mut out = Vec::new();
        while let Some((_, AofEntry::Command(args))) = reader.next_entry().unwrap() {
            out.push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn every_type_becomes_the_commands_that_rebuild_it() {
        let mut keyspace = Keyspace::default();
        let db = keyspace.db(0).unwrap();
        let now = 1_000;
        strings::set(db, &k("s"), k("v"), strings::SetOptions::default(), now).unwrap();
        let values: Vec<Bytes> = (0..70).map(|n| Bytes::from(n.to_string())).collect();
        lists::push(db, &k("l"), &values, lists::End::Right, false, now).unwrap();
        hashes::set(db, &k("h"), &[k("f"), k("x")], now).unwrap();
        db.set_expiry(b"h", Some(5_000), now);
        strings::set(db, &k("gone"), k("v"), strings::SetOptions::default(), now).unwrap();
        db.set_expiry(b"gone", Some(1_500), now);
        let other = keyspace.db(3).unwrap();
        strings::set(other, &k("t"), k("w"), strings::SetOptions::default(), now).unwrap();

        let snapshot = Snapshot::take(&keyspace, 2_000);
        assert_eq!(snapshot.len(), 4, "the expired key is not copied");
        let commands = commands(&snapshot);
        let texts: Vec<String> = commands.iter().map(|c| c[..2].join(" ")).collect();
        assert_eq!(texts[0], "SELECT 0");
        assert!(texts.contains(&"SET s".to_owned()));
        assert_eq!(
            commands
                .iter()
                .filter(|c| c[0] == "RPUSH")
                .map(|c| c.len() - 2)
                .collect::<Vec<_>>(),
            vec![64, 6]
        );
        assert!(commands.contains(&vec!["HSET".into(), "h".into(), "f".into(), "x".into()]));
        assert!(commands.contains(&vec!["PEXPIREAT".into(), "h".into(), "5000".into()]));
        let select3 = texts.iter().position(|t| t == "SELECT 3").unwrap();
        assert_eq!(texts[select3 + 1], "SET t");
    }
}
