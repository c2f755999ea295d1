//! CLIENT: ID, SETNAME, GETNAME, LIST, KILL, INFO, SETINFO, REPLY, HELP.

use std::time::Instant;

use bytes::Bytes;
use herald_engine::CloseReason;

use super::connection::valid_client_name;
use super::{flag, parse_i64, reply_help, CommandSpec, BASE, SYNTAX_ERROR};
use crate::clients::ClientHandle;
use crate::session::{Flow, Output, ReplyMode, Session};

const CLIENT_SUB: CommandSpec = CommandSpec {
    group: "connection",
    flags: flag::NOSCRIPT | flag::LOADING | flag::STALE,
    acl_categories: &["@slow", "@connection"],
    ..BASE
};

/// `CLIENT <subcommand>`
pub const CLIENT: CommandSpec = CommandSpec {
    name: "client",
    full_name: "client",
    arity: -2,
    group: "connection",
    summary: "A container for client connection commands.",
    complexity: "Depends on subcommand.",
    acl_categories: &["@slow"],
    subcommands: &[
        CommandSpec {
            name: "id",
            full_name: "client|id",
            arity: 2,
            summary: "Returns the unique client ID of the connection.",
            handler: Some(|session, out, _| {
                out.reply().integer(session.handle.id.0 as i64);
                Flow::Continue
            }),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "setname",
            full_name: "client|setname",
            arity: 3,
            summary: "Sets the connection name.",
            handler: Some(setname),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "getname",
            full_name: "client|getname",
            arity: 2,
            summary: "Returns the name of the connection.",
            handler: Some(|session, out, _| {
                out.reply().optional_bulk(session.name.as_deref());
                Flow::Continue
            }),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "list",
            full_name: "client|list",
            arity: -2,
            summary: "Lists open connections.",
            complexity: "O(N) where N is the number of client connections",
            flags: flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE,
            handler: Some(list),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "kill",
            full_name: "client|kill",
            arity: -3,
            summary: "Terminates open connections.",
            complexity: "O(N) where N is the number of client connections",
            flags: flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE,
            handler: Some(kill),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "info",
            full_name: "client|info",
            arity: 2,
            since: "6.2.0",
            summary: "Returns information about the connection.",
            handler: Some(|session, out, _| {
                session.mirror_now();
                let line = session.handle.describe(Instant::now()) + "\n";
                out.reply().verbatim(b"txt", line.as_bytes());
                Flow::Continue
            }),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "setinfo",
            full_name: "client|setinfo",
            arity: 4,
            since: "7.2.0",
            summary: "Sets information specific to the client or connection.",
            handler: Some(setinfo),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "reply",
            full_name: "client|reply",
            arity: 3,
            since: "3.2.0",
            summary: "Instructs the server whether to reply to commands.",
            handler: Some(reply_mode),
            ..CLIENT_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "client|help",
            arity: 2,
            summary: "Returns helpful text about the different subcommands.",
            handler: Some(|_, out, _| {
                reply_help(out, "client", &[
                    "GETNAME",
                    "    Return the name of the current connection.",
                    "ID",
                    "    Return the ID of the current connection.",
                    "INFO",
                    "    Return information about the current client connection.",
                    "KILL <ip:port>",
                    "    Kill connection made from <ip:port>.",
                    "KILL <option> <value> [<option> <value> [...]]",
                    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
                    "    TYPE (normal|pubsub), USER <username>, SKIPME (YES|NO), MAXAGE <seconds>.",
                    "LIST [TYPE (NORMAL|PUBSUB)] [ID <client-id> [<client-id> ...]]",
                    "    Return information about client connections.",
                    "REPLY (ON|OFF|SKIP)",
                    "    Control the replies sent to the current connection.",
                    "SETNAME <name>",
                    "    Assign the name <name> to the current connection.",
                    "SETINFO <option> <value>",
                    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                ]);
                Flow::Continue
            }),
            ..CLIENT_SUB
        },
    ],
    ..BASE
};

fn setname(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let name = &args[2];
    if !valid_client_name(name) {
        out.error("ERR Client names cannot contain spaces, newlines or special characters.");
    } else {
        session.name = (!name.is_empty()).then(|| name.clone());
        out.ok();
    }
    Flow::Continue
}

fn setinfo(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let attribute = args[2].to_ascii_lowercase();
    let value = &args[3];
    let slot = match &attribute[..] {
        b"lib-name" => &mut session.lib_name,
        b"lib-ver" => &mut session.lib_ver,
        _ => {
            out.error(&format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&args[2])
            ));
            return Flow::Continue;
        }
    };
    if !valid_client_name(value) {
        out.error(&format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&attribute)
        ));
        return Flow::Continue;
    }
    *slot = (!value.is_empty()).then(|| value.clone());
    out.ok();
    Flow::Continue
}

fn reply_mode(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    match &args[2].to_ascii_lowercase()[..] {
        b"on" => {
            session.reply_mode = ReplyMode::On;
            out.set_suppressed(false);
            out.ok();
        }
        b"off" => session.reply_mode = ReplyMode::Off,
        b"skip" => {
            if session.reply_mode != ReplyMode::Off {
                session.reply_mode = ReplyMode::SkipNext;
            }
        }
        _ => out.error(SYNTAX_ERROR),
    }
    Flow::Continue
}

/// Redis's client types as CLIENT LIST/KILL TYPE names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientType {
    Normal,
    Pubsub,
    /// Herald has no replicas or masters; the filter is valid and matches nobody.
    Replication,
}

fn parse_type(arg: &[u8]) -> Result<ClientType, String> {
    match &arg.to_ascii_lowercase()[..] {
        b"normal" => Ok(ClientType::Normal),
        b"pubsub" => Ok(ClientType::Pubsub),
        b"master" | b"replica" | b"slave" => Ok(ClientType::Replication),
        _ => Err(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(arg)
        )),
    }
}

fn type_matches(client: &ClientHandle, wanted: ClientType) -> bool {
    match wanted {
        ClientType::Normal => !client.is_pubsub(),
        ClientType::Pubsub => client.is_pubsub(),
        ClientType::Replication => false,
    }
}

fn list(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut wanted_type = None;
    let mut wanted_ids: Option<Vec<u64>> = None;
    match args.get(2).map(|arg| arg.to_ascii_lowercase()) {
        None => {}
        Some(option) if option == b"type" && args.len() == 4 => match parse_type(&args[3]) {
            Ok(kind) => wanted_type = Some(kind),
            Err(text) => {
                out.error(&text);
                return Flow::Continue;
            }
        },
        Some(option) if option == b"id" && args.len() >= 4 => {
            let mut ids = Vec::new();
            for arg in &args[3..] {
                match parse_i64(arg) {
                    Some(id) if id > 0 => ids.push(id as u64),
                    _ => {
                        out.error("ERR Invalid client ID");
                        return Flow::Continue;
                    }
                }
            }
            wanted_ids = Some(ids);
        }
        Some(_) => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
    }
    session.mirror_now();
    let now = Instant::now();
    let mut text = String::new();
    for client in session.shared.clients.snapshot() {
        if wanted_type.is_some_and(|kind| !type_matches(&client, kind)) {
            continue;
        }
        if wanted_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&client.id.0))
        {
            continue;
        }
        text.push_str(&client.describe(now));
        text.push('\n');
    }
    out.reply().verbatim(b"txt", text.as_bytes());
    Flow::Continue
}

#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    kind: Option<ClientType>,
    user: Option<Vec<u8>>,
    max_age_secs: Option<u64>,
    skip_me: bool,
}

impl KillFilter {
    fn parse(args: &[Bytes]) -> Result<KillFilter, String> {
        let mut filter = KillFilter {
            skip_me: true,
            ..KillFilter::default()
        };
        let pairs = &args[2..];
        if !pairs.len().is_multiple_of(2) {
            return Err(SYNTAX_ERROR.to_owned());
        }
        for pair in pairs.chunks(2) {
            let value = &pair[1];
            let text = String::from_utf8_lossy(value).into_owned();
            match &pair[0].to_ascii_lowercase()[..] {
                b"id" => match parse_i64(value) {
                    Some(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return Err("ERR client-id should be greater than 0".to_owned()),
                },
                b"addr" => filter.addr = Some(text),
                b"laddr" => filter.laddr = Some(text),
                b"type" => filter.kind = Some(parse_type(value)?),
                b"user" => filter.user = Some(value.to_vec()),
                b"skipme" => match &value.to_ascii_lowercase()[..] {
                    b"yes" => filter.skip_me = true,
                    b"no" => filter.skip_me = false,
                    _ => return Err(SYNTAX_ERROR.to_owned()),
                },
                b"maxage" => match parse_i64(value) {
                    Some(age) if age >= 0 => filter.max_age_secs = Some(age as u64),
                    _ => return Err(super::NOT_AN_INTEGER.to_owned()),
                },
                _ => return Err(SYNTAX_ERROR.to_owned()),
            }
        }
        Ok(filter)
    }

    fn matches(&self, client: &ClientHandle, me: &ClientHandle, now: Instant) -> bool {
        if self.skip_me && client.id == me.id {
            return false;
        }
        self.id.is_none_or(|id| client.id.0 == id)
            && self
                .addr
                .as_ref()
                .is_none_or(|addr| client.peer.to_string() == *addr)
            && self
                .laddr
                .as_ref()
                .is_none_or(|addr| client.local.to_string() == *addr)
            && self.kind.is_none_or(|kind| type_matches(client, kind))
            && self.user.as_ref().is_none_or(|user| user == b"default")
            && self.max_age_secs.is_none_or(|max| {
                now.saturating_duration_since(client.connected_at).as_secs() > max
            })
    }
}

fn kill(session: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let clients = session.shared.clients.snapshot();
    let me = &session.handle;
    if args.len() == 3 {
        // Old form: CLIENT KILL ip:port, which may name the caller itself.
        let addr = String::from_utf8_lossy(&args[2]);
        let Some(target) = clients.iter().find(|c| c.peer.to_string() == addr) else {
            out.error("ERR No such client");
            return Flow::Continue;
        };
        out.ok();
        if target.id == me.id {
            return Flow::Close;
        }
        target.outbox.kill(CloseReason::Killed);
        return Flow::Continue;
    }
    let filter = match KillFilter::parse(args) {
        Ok(filter) => filter,
        Err(text) => {
            out.error(&text);
            return Flow::Continue;
        }
    };
    let now = Instant::now();
    let mut killed = 0;
    let mut killed_me = false;
    for client in clients.iter().filter(|c| filter.matches(c, me, now)) {
        killed += 1;
        if client.id == me.id {
            killed_me = true;
        } else {
            tracing::info!(client = %client.id, peer = %client.peer, by = %me.id, "CLIENT KILL");
            client.outbox.kill(CloseReason::Killed);
        }
    }
    out.reply().integer(killed);
    if killed_me {
        Flow::Close
    } else {
        Flow::Continue
    }
}
