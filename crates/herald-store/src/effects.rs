//! Changes the keyspace makes on its own, recorded for the append-only file.
//!
//! Two kinds of change happen without a client command that says so, and a log of
//! commands alone would miss them:
//! - a key reclaimed because its time came (lazily when touched, or by the active
//!   cycle): logged as `DEL key`, so that a replay, which never expires anything, sees
//!   the key vanish at the same point as the live server did;
//! - a blocked client served by another client's push: logged as the non-blocking
//!   command that has the same effect (`LPOP key n`, `LMOVE src dst LEFT RIGHT`), after
//!   the push that made it possible.
//!
//! Recording is off unless persistence turns it on, so a server without an
//! append-only file keeps nothing here.

use bytes::Bytes;

use crate::lists::End;

/// The self-made changes of one database since they were last taken.
#[derive(Debug, Default)]
pub struct EffectLog {
    enabled: bool,
    expired: Vec<Bytes>,
    served: Vec<Vec<Bytes>>,
}

impl EffectLog {
    /// Starts or stops recording (dropping what was recorded when stopping).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            self.expired = Vec::new();
            self.served = Vec::new();
        }
    }

    /// True while recording.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True when nothing was recorded since the last take (the common case, checked
    /// after every command: it must cost no more than two loads).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.served.is_empty()
    }

    pub(crate) fn expired(&mut self, key: &[u8]) {
        if self.enabled {
            self.expired.push(Bytes::copy_from_slice(key));
        }
    }

    pub(crate) fn popped(&mut self, key: &Bytes, end: End, count: usize) {
        if self.enabled {
            let command = match end {
                End::Left => "LPOP",
                End::Right => "RPOP",
            };
            self.served.push(vec![
                Bytes::from_static(command.as_bytes()),
                key.clone(),
                Bytes::from(count.to_string()),
            ]);
        }
    }

    pub(crate) fn moved(&mut self, source: &Bytes, destination: &Bytes, from: End, to: End) {
        if self.enabled {
            self.served.push(vec![
                Bytes::from_static(b"LMOVE"),
                source.clone(),
                destination.clone(),
                end_name(from),
                end_name(to),
            ]);
        }
    }

    /// Records, already in replayable form, of a blocked client served by another
    /// client's command (a consumer-group read served by XADD).
    pub fn served_records(&mut self, records: Vec<Vec<Bytes>>) {
        if self.enabled {
            self.served.extend(records);
        }
    }

    /// Keys reclaimed by expiry since the last call, in order.
    pub fn take_expired(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.expired)
    }

    /// Commands equivalent to the blocked clients served since the last call, in order.
    pub fn take_served(&mut self) -> Vec<Vec<Bytes>> {
        std::mem::take(&mut self.served)
    }
}

fn end_name(end: End) -> Bytes {
    Bytes::from_static(match end {
        End::Left => b"LEFT",
        End::Right => b"RIGHT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_enabled() {
        let mut log = EffectLog::default();
        log.expired(b"a");
        assert!(log.take_expired().is_empty());
        log.set_enabled(true);
        log.expired(b"a");
        log.popped(&Bytes::from("l"), End::Right, 2);
        log.moved(&Bytes::from("s"), &Bytes::from("d"), End::Left, End::Right);
        assert_eq!(log.take_expired(), vec![Bytes::from("a")]);
        assert_eq!(
            log.take_served(),
            vec![
                vec![Bytes::from("RPOP"), Bytes::from("l"), Bytes::from("2")],
                vec![
                    Bytes::from("LMOVE"),
                    Bytes::from("s"),
                    Bytes::from("d"),
                    Bytes::from("LEFT"),
                    Bytes::from("RIGHT")
                ],
            ]
        );
        log.expired(b"b");
        log.set_enabled(false);
        assert!(log.take_expired().is_empty());
    }
}
