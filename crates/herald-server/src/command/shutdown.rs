//! `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`: stops the server from a client,
//! as SIGTERM does, after making sure that what the server holds is on disk.
//!
//! The handler only parses and decides; the connection runs [`prepare`] (which may
//! fsync, so it must not run on a handler) and, when that succeeds, asks the listener
//! to stop ([`Shared::request_shutdown`]): the client gets no reply, its connection
//! closes with every other, and the process exits as after SIGTERM. When it fails, the
//! client gets an error and the server keeps serving, unless FORCE says to exit anyway.
//!
//! Where Redis would save an RDB snapshot, Herald has only its append-only file: SAVE
//! is honoured by flushing and fsyncing that file, and refused (unless FORCE) when
//! `appendonly` is off, rather than exiting with a dataset the caller asked to keep.
//! Herald has no replicas, so NOW changes nothing and there is never a shutdown in
//! progress for ABORT to cancel.

use super::{flag, CommandSpec, BASE, SYNTAX_ERROR};
use crate::server::Shared;
use crate::session::Flow;

/// What a SHUTDOWN asked for, once its arguments parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// SAVE: keep the dataset, or do not exit.
    pub save: bool,
    /// FORCE: exit even when the dataset could not be made durable.
    pub force: bool,
}

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`
pub const SHUTDOWN: CommandSpec = CommandSpec {
    name: "shutdown",
    full_name: "shutdown",
    arity: -1,
    flags: flag::ADMIN
        | flag::NOSCRIPT
        | flag::LOADING
        | flag::STALE
        | flag::NO_MULTI
        | flag::ALLOW_BUSY,
    summary: "Synchronously saves the database(s) to disk and shuts down the server.",
    complexity: "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
    acl_categories: &["@admin", "@slow", "@dangerous"],
    handler: Some(|_, out, args| {
        match parse(&args[1..]) {
            Ok(Parsed::Shutdown(request)) => return Flow::Shutdown(request),
            Ok(Parsed::Abort) => out.error("ERR No shutdown in progress."),
            Err(error) => out.error(error),
        }
        Flow::Continue
    }),
    ..BASE
};

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Shutdown(ShutdownRequest),
    Abort,
}

/// Redis's rules: any order, ABORT alone, not both SAVE and NOSAVE.
fn parse(args: &[bytes::Bytes]) -> Result<Parsed, &'static str> {
    let (mut save, mut nosave, mut force, mut now, mut abort) = (false, false, false, false, false);
    for arg in args {
        let word = arg.to_ascii_lowercase();
        let seen = match word.as_slice() {
            b"save" => &mut save,
            b"nosave" => &mut nosave,
            b"force" => &mut force,
            b"now" => &mut now,
            b"abort" => &mut abort,
            _ => return Err(SYNTAX_ERROR),
        };
        *seen = true;
    }
    if (save && nosave) || (abort && (save || nosave || force || now)) {
        return Err(SYNTAX_ERROR);
    }
    if abort {
        return Ok(Parsed::Abort);
    }
    Ok(Parsed::Shutdown(ShutdownRequest { save, force }))
}

/// Makes the dataset as durable as `request` asks before the server commits to exiting:
/// with the append-only file on, everything appended so far is written and fsynced
/// (whatever `appendfsync` says). `Err` is the reply for a shutdown refused; the reason
/// is also logged, as Redis does.
pub async fn prepare(shared: &Shared, request: ShutdownRequest) -> Result<(), String> {
    let refused = match shared.persistence() {
        Some(persistence) => {
            // An fsync: off the async workers.
            let flushed = tokio::task::spawn_blocking(move || persistence.flush()).await;
            match flushed {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(format!(
                    "cannot write or fsync the append-only file ({err})"
                )),
                Err(err) => Some(format!("flushing the append-only file failed ({err})")),
            }
        }
        None if request.save => Some(
            "SAVE asked for the dataset to be kept, but Herald writes no RDB snapshot and \
             appendonly is off (turn appendonly on, or use NOSAVE or FORCE)"
                .to_owned(),
        ),
        None => None,
    };
    match refused {
        None => {
            tracing::info!("SHUTDOWN from a client: stopping the server");
            Ok(())
        }
        Some(reason) if request.force => {
            tracing::warn!("SHUTDOWN FORCE: {reason}; exiting anyway");
            Ok(())
        }
        Some(reason) => {
            tracing::warn!("SHUTDOWN refused: {reason}; still serving");
            Err(format!("ERR Errors trying to SHUTDOWN: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn parsed(words: &[&str]) -> Result<Parsed, &'static str> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect();
        parse(&args)
    }

    fn shutdown(save: bool, force: bool) -> Result<Parsed, &'static str> {
        Ok(Parsed::Shutdown(ShutdownRequest { save, force }))
    }

    #[test]
    fn arguments_combine_as_in_redis() {
        assert_eq!(parsed(&[]), shutdown(false, false));
        assert_eq!(parsed(&["NOSAVE"]), shutdown(false, false));
        assert_eq!(parsed(&["save", "NOW"]), shutdown(true, false));
        assert_eq!(parsed(&["force", "nosave", "now"]), shutdown(false, true));
        assert_eq!(parsed(&["SAVE", "FORCE"]), shutdown(true, true));
        assert_eq!(parsed(&["abort"]), Ok(Parsed::Abort));
    }

    #[test]
    fn bad_combinations_are_syntax_errors() {
        for words in [
            &["save", "nosave"][..],
            &["abort", "now"],
            &["force", "abort"],
            &["abort", "save"],
            &["later"],
            &["nosave", ""],
        ] {
            assert_eq!(parsed(words), Err(SYNTAX_ERROR), "{words:?}");
        }
    }
}
