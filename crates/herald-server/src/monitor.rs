//! MONITOR: the clients that watch every command the server runs, and the line each
//! command becomes for them, in Redis 7.0's format:
//! `+1700000000.123456 [0 127.0.0.1:52044] "set" "key" "value"`.
//!
//! What is shown follows Redis: a command is shown after it ran (so EXEC comes after the
//! commands it ran), with the arguments the client sent, AUTH's and HELLO's secrets
//! replaced by `(redacted)`; administrative commands (CONFIG, CLIENT, SHUTDOWN, MONITOR
//! itself, ...) are not shown, nor are commands that were refused before they ran
//! (unknown, wrong arity, NOAUTH) or only queued inside MULTI.
//!
//! Cost when nobody monitors: one relaxed atomic load per command. A monitor's outbox
//! is in the `replica` output class, so one that reads too slowly is disconnected by
//! `client-output-buffer-limit` (256 MB by default) rather than growing without bound.
//! That is on purpose where Redis differs: it limits monitors as `normal` clients, which
//! by default means never (README, "Where Herald differs from Redis"). This module must not block or hold its lock while writing to a socket: lines
//! are queued in outboxes, whose writers send them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use herald_engine::{ClientId, Outbox};
use parking_lot::Mutex;

/// The clients in MONITOR mode.
#[derive(Debug, Default)]
pub struct Monitors {
    /// `watching.len()`, read by every command without the lock.
    count: AtomicUsize,
    watching: Mutex<Vec<(ClientId, Arc<Outbox>)>>,
}

impl Monitors {
    /// True when at least one client monitors.
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Clients in MONITOR mode now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nobody monitors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `outbox` (client `id`); false when it already monitors.
    pub fn add(&self, id: ClientId, outbox: Arc<Outbox>) -> bool {
        let mut watching = self.watching.lock();
        if watching.iter().any(|(watcher, _)| *watcher == id) {
            return false;
        }
        watching.push((id, outbox));
        self.count.store(watching.len(), Ordering::Relaxed);
        true
    }

    /// Removes client `id` (RESET, disconnection); false when it did not monitor.
    pub fn remove(&self, id: ClientId) -> bool {
        let mut watching = self.watching.lock();
        let before = watching.len();
        watching.retain(|(watcher, _)| *watcher != id);
        self.count.store(watching.len(), Ordering::Relaxed);
        watching.len() != before
    }

    /// Queues `line` to every monitor but `except` (the running command's own client,
    /// which puts the line after its reply itself).
    pub fn send(&self, line: &Bytes, except: ClientId) {
        let watching = self.watching.lock();
        for (id, outbox) in watching.iter() {
            if *id != except {
                outbox.push_frame(line.clone());
            }
        }
    }
}

/// What MONITOR shows for a command run by the client at `peer` in database `db`, at
/// `micros` since the Unix epoch.
pub fn line(micros: u128, db: usize, peer: SocketAddr, args: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(48 + args.iter().map(|arg| arg.len() + 3).sum::<usize>());
    out.extend_from_slice(
        format!(
            "+{}.{:06} [{db} {peer}]",
            micros / 1_000_000,
            micros % 1_000_000
        )
        .as_bytes(),
    );
    let redacted = redacted_from(args);
    for (index, arg) in args.iter().enumerate() {
        out.extend_from_slice(b" ");
        if redacted.is_some_and(|(from, to)| (from..to).contains(&index)) {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote(&mut out, arg);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// The arguments whose values MONITOR hides, as Redis's `redactClientCommandArgument`:
/// everything after AUTH, the user name and password after HELLO's AUTH.
fn redacted_from(args: &[Bytes]) -> Option<(usize, usize)> {
    let name = args.first()?;
    if name.eq_ignore_ascii_case(b"auth") {
        return Some((1, args.len()));
    }
    if name.eq_ignore_ascii_case(b"hello") {
        let auth = args
            .iter()
            .position(|arg| arg.eq_ignore_ascii_case(b"auth"))?;
        return Some((auth + 1, (auth + 3).min(args.len())));
    }
    None
}

/// Appends `arg` in double quotes, escaped as Redis's `sdscatrepr`: backslash and quote
/// escaped, `\n \r \t \a \b` by name, other bytes outside printable ASCII as `\xHH`.
fn quote(out: &mut BytesMut, arg: &[u8]) {
    out.extend_from_slice(b"\"");
    for &byte in arg {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.extend_from_slice(&[byte]),
            _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
        }
    }
    out.extend_from_slice(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&[u8]]) -> Vec<Bytes> {
        words
            .iter()
            .map(|word| Bytes::copy_from_slice(word))
            .collect()
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 52044))
    }

    #[test]
    fn a_line_is_time_db_client_and_quoted_arguments() {
        let line = line(
            1_700_000_000_000_042,
            3,
            peer(),
            &args(&[b"set", b"k", b"v"]),
        );
        assert_eq!(
            &line[..],
            b"+1700000000.000042 [3 127.0.0.1:52044] \"set\" \"k\" \"v\"\r\n"
        );
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7000));
        let line = super::line(5_000_000, 0, v6, &args(&[b"ping"]));
        assert_eq!(&line[..], b"+5.000000 [0 [::1]:7000] \"ping\"\r\n");
    }

    #[test]
    fn arguments_are_escaped_as_redis_does() {
        let line = line(
            0,
            0,
            peer(),
            &args(&[b"get", b"a\"b\\c", b"\n\r\t\x07\x08", b"foo\x92\x00~ "]),
        );
        assert_eq!(
            &line[..],
            b"+0.000000 [0 127.0.0.1:52044] \"get\" \"a\\\"b\\\\c\" \"\\n\\r\\t\\a\\b\" \"foo\\x92\\x00~ \"\r\n"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = |words: &[&[u8]]| {
            let line = line(0, 0, peer(), &args(words));
            String::from_utf8_lossy(&line[30..line.len() - 2]).into_owned()
        };
        assert_eq!(shown(&[b"AUTH", b"pw"]), "\"AUTH\" \"(redacted)\"");
        assert_eq!(
            shown(&[b"auth", b"user", b"pw"]),
            "\"auth\" \"(redacted)\" \"(redacted)\""
        );
        assert_eq!(
            shown(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]),
            "\"HELLO\" \"3\" \"AUTH\" \"(redacted)\" \"(redacted)\" \"SETNAME\" \"n\""
        );
        assert_eq!(shown(&[b"hello", b"3"]), "\"hello\" \"3\"");
    }

    #[test]
    fn monitors_are_added_once_and_removed() {
        let monitors = Monitors::default();
        assert!(!monitors.any());
        let limits = Arc::new(herald_engine::OutputLimits::default());
        let outbox = Arc::new(Outbox::new(ClientId(7), limits));
        assert!(monitors.add(ClientId(7), Arc::clone(&outbox)));
        assert!(!monitors.add(ClientId(7), outbox), "already monitoring");
        assert!(monitors.any() && monitors.len() == 1);
        assert!(monitors.remove(ClientId(7)));
        assert!(!monitors.remove(ClientId(7)));
        assert!(!monitors.any());
    }
}
