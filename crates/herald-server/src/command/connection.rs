//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT.

use bytes::Bytes;
use herald_proto::Protocol;

use super::{flag, parse_i64, CommandSpec, BASE, NOT_AN_INTEGER, SYNTAX_ERROR};
use crate::config::DATABASES;
use crate::session::{Flow, Output, ReplyMode, Session};

const CONNECTION: CommandSpec = CommandSpec {
    group: "connection",
    acl_categories: &["@fast", "@connection"],
    ..BASE
};

/// Flags of the commands a client may send before it is authenticated.
const HANDSHAKE_FLAGS: u32 =
    flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::NO_AUTH | flag::ALLOW_BUSY;

/// `PING [message]`
pub const PING: CommandSpec = CommandSpec {
    name: "ping",
    full_name: "ping",
    arity: -1,
    flags: flag::FAST | flag::SUBSCRIBED_OK,
    summary: "Returns the server's liveliness response.",
    handler: Some(ping),
    ..CONNECTION
};

/// `ECHO message`
pub const ECHO: CommandSpec = CommandSpec {
    name: "echo",
    full_name: "echo",
    arity: 2,
    flags: flag::FAST,
    summary: "Returns the given string.",
    handler: Some(|_, out, args| {
        out.reply().bulk(&args[1]);
        Flow::Continue
    }),
    ..CONNECTION
};

/// `QUIT`
pub const QUIT: CommandSpec = CommandSpec {
    name: "quit",
    full_name: "quit",
    arity: -1,
    flags: flag::ALLOW_BUSY
        | flag::NOSCRIPT
        | flag::LOADING
        | flag::STALE
        | flag::FAST
        | flag::NO_AUTH
        | flag::SUBSCRIBED_OK
        | flag::RUNS_IN_MULTI,
    summary: "Closes the connection.",
    handler: Some(|_, out, _| {
        out.ok();
        Flow::Close
    }),
    ..CONNECTION
};

/// `RESET`
pub const RESET: CommandSpec = CommandSpec {
    name: "reset",
    full_name: "reset",
    arity: 1,
    flags: HANDSHAKE_FLAGS | flag::SUBSCRIBED_OK | flag::RUNS_IN_MULTI,
    since: "6.2.0",
    summary: "Resets the connection.",
    handler: Some(reset),
    ..CONNECTION
};

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
pub const HELLO: CommandSpec = CommandSpec {
    name: "hello",
    full_name: "hello",
    arity: -1,
    flags: HANDSHAKE_FLAGS,
    since: "6.0.0",
    summary: "Handshakes with the Redis server.",
    handler: Some(hello),
    ..CONNECTION
};

/// `AUTH [username] password`
pub const AUTH: CommandSpec = CommandSpec {
    name: "auth",
    full_name: "auth",
    arity: -2,
    flags: HANDSHAKE_FLAGS,
    summary: "Authenticates the connection.",
    complexity: "O(N) where N is the number of passwords defined for the user",
    handler: Some(auth),
    ..CONNECTION
};

/// `SELECT index`
pub const SELECT: CommandSpec = CommandSpec {
    name: "select",
    full_name: "select",
    arity: 2,
    flags: flag::LOADING | flag::STALE | flag::FAST,
    summary: "Changes the selected database.",
    handler: Some(select),
    ..CONNECTION
};

fn ping(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    if args.len() > 2 {
        out.error(&super::wrong_arity("ping"));
        return Flow::Continue;
    }
    let mut reply = out.reply();
    if session.protocol == Protocol::Resp2 && session.subscriptions.total() > 0 {
        reply.array(2);
        reply.bulk(b"pong");
        reply.bulk(args.get(1).map_or(&b""[..], |arg| arg));
    } else {
        match args.get(1) {
            Some(message) => reply.bulk(message),
            None => reply.simple("PONG"),
        }
    }
    Flow::Continue
}

fn reset(session: &mut Session, out: &mut Output<'_>, _: &[Bytes]) -> Flow {
    if session.monitoring {
        session.shared.monitors.remove(session.handle.id);
        session.monitoring = false;
    }
    session.drop_subscriptions();
    session.transaction = None;
    session.unwatch_all();
    session.set_protocol(Protocol::Resp2);
    out.set_protocol(Protocol::Resp2);
    session.name = None;
    session.db = 0;
    session.reply_mode = ReplyMode::On;
    session.authenticated = false;
    out.set_suppressed(false);
    out.reply().simple("RESET");
    Flow::Continue
}

/// Compares secrets without an early exit, so timing does not reveal the matching prefix.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (i, byte) in given.iter().enumerate() {
        difference |= usize::from(
            byte ^ expected
                .get(i % expected.len().max(1))
                .copied()
                .unwrap_or(0),
        );
    }
    difference == 0
}

/// Checks credentials of the default user (the only user until ACLs land).
/// `Err` carries Redis's error text.
fn check_credentials(
    session: &Session,
    username: Option<&[u8]>,
    password: &[u8],
) -> Result<(), &'static str> {
    const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    if username.is_some_and(|name| name != b"default") {
        return Err(WRONGPASS);
    }
    match session.shared.config.requirepass() {
        // The default user is `nopass`: any password works when named explicitly.
        None if username.is_some() => Ok(()),
        None => Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        Some(expected) if same_secret(password, expected.as_bytes()) => Ok(()),
        Some(_) => Err(WRONGPASS),
    }
}

fn auth(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let (username, password) = match args.len() {
        2 => (None, &args[1]),
        3 => (Some(&args[1][..]), &args[2]),
        _ => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
    };
    match check_credentials(session, username, password) {
        Ok(()) => {
            session.authenticated = true;
            out.ok();
        }
        Err(text) => {
            tracing::info!(client = %session.handle.id, peer = %session.handle.peer, "AUTH failed");
            out.error(text);
        }
    }
    Flow::Continue
}

/// Client names and library names: printable ASCII without spaces (Redis's rule).
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&byte| (b'!'..=b'~').contains(&byte))
}

fn hello(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut protocol = session.protocol;
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Some(2) => protocol = Protocol::Resp2,
            Some(3) => protocol = Protocol::Resp3,
            Some(_) => {
                out.error("NOPROTO unsupported protocol version");
                return Flow::Continue;
            }
            None => {
                out.error("ERR Protocol version is not an integer or out of range");
                return Flow::Continue;
            }
        }
    }
    let mut credentials = None;
    let mut new_name = None;
    let mut i = 2;
    while i < args.len() {
        let option = args[i].to_ascii_lowercase();
        let more = args.len() - i - 1;
        if option == b"auth" && more >= 2 {
            credentials = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if option == b"setname" && more >= 1 {
            new_name = Some(&args[i + 1]);
            i += 2;
        } else {
            out.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
            return Flow::Continue;
        }
    }
    if let Some((username, password)) = credentials {
        match check_credentials(session, Some(username), password) {
            Ok(()) => session.authenticated = true,
            Err(text) => {
                out.error(text);
                return Flow::Continue;
            }
        }
    }
    if !session.is_authenticated() {
        out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return Flow::Continue;
    }
    if let Some(name) = new_name {
        if !valid_client_name(name) {
            out.error("ERR Client names cannot contain spaces, newlines or special characters.");
            return Flow::Continue;
        }
        session.name = (!name.is_empty()).then(|| name.clone());
    }
    session.set_protocol(protocol);
    out.set_protocol(protocol);
    let mut reply = out.reply();
    reply.map(7);
    reply.bulk(b"server");
    reply.bulk(b"redis");
    reply.bulk(b"version");
    reply.bulk(crate::REDIS_VERSION.as_bytes());
    reply.bulk(b"proto");
    reply.integer(protocol.version());
    reply.bulk(b"id");
    reply.integer(session.handle.id.0 as i64);
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array(0);
    Flow::Continue
}

fn select(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    match parse_i64(&args[1]) {
        None => out.error(NOT_AN_INTEGER),
        Some(index) if !(0..DATABASES as i64).contains(&index) => {
            out.error("ERR DB index is out of range")
        }
        Some(index) => {
            session.db = index as usize;
            out.ok();
        }
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn client_names() {
        assert!(valid_client_name(b"worker-1"));
        assert!(valid_client_name(b""));
        assert!(!valid_client_name(b"has space"));
        assert!(!valid_client_name(b"new\nline"));
    }
}
