//! COMMAND: COUNT, INFO, DOCS, LIST, HELP — the command table rendered for clients
//! (redis-cli builds its hints from COMMAND DOCS).

use bytes::Bytes;
use herald_engine::Glob;
use herald_proto::ReplyWriter;

use super::{flag, lookup, reply_help, CommandSpec, BASE, COMMANDS, SYNTAX_ERROR};
use crate::session::{Flow, Output, Session};

const COMMAND_SUB: CommandSpec = CommandSpec {
    flags: flag::LOADING | flag::STALE,
    acl_categories: &["@slow", "@connection"],
    since: "2.8.13",
    ..BASE
};

/// `COMMAND [subcommand]`
pub const COMMAND: CommandSpec = CommandSpec {
    name: "command",
    full_name: "command",
    arity: -1,
    flags: flag::LOADING | flag::STALE,
    summary: "Returns detailed information about all commands.",
    since: "2.8.13",
    complexity: "O(N) where N is the total number of Redis commands",
    acl_categories: &["@slow", "@connection"],
    handler: Some(|_, out, _| {
        let mut reply = out.reply();
        reply.array(COMMANDS.len());
        for spec in COMMANDS {
            write_info(&mut reply, spec);
        }
        Flow::Continue
    }),
    subcommands: &[
        CommandSpec {
            name: "count",
            full_name: "command|count",
            arity: 2,
            summary: "Returns a count of commands.",
            handler: Some(|_, out, _| {
                out.reply().integer(COMMANDS.len() as i64);
                Flow::Continue
            }),
            ..COMMAND_SUB
        },
        CommandSpec {
            name: "info",
            full_name: "command|info",
            arity: -2,
            summary: "Returns information about one, multiple or all commands.",
            complexity: "O(N) where N is the number of commands to look up",
            handler: Some(info),
            ..COMMAND_SUB
        },
        CommandSpec {
            name: "docs",
            full_name: "command|docs",
            arity: -2,
            since: "7.0.0",
            summary: "Returns documentary information about one, multiple or all commands.",
            complexity: "O(N) where N is the number of commands to look up",
            handler: Some(docs),
            ..COMMAND_SUB
        },
        CommandSpec {
            name: "list",
            full_name: "command|list",
            arity: -2,
            since: "7.0.0",
            summary: "Returns a list of command names.",
            complexity: "O(N) where N is the total number of Redis commands",
            handler: Some(list),
            ..COMMAND_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "command|help",
            arity: 2,
            summary: "Returns helpful text about the different subcommands.",
            handler: Some(|_, out, _| {
                reply_help(out, "command", &[
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands in this server.",
                    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                    "    Return a list of all commands in this server.",
                    "INFO [<command-name> ...]",
                    "    Return details about multiple commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentation details about multiple commands.",
                ]);
                Flow::Continue
            }),
            ..COMMAND_SUB
        },
    ],
    ..BASE
};

/// Redis 7 COMMAND INFO entry: name, arity, flags, first/last key, step, ACL categories,
/// tips, key specs, subcommands.
fn write_info(reply: &mut ReplyWriter<'_>, spec: &CommandSpec) {
    reply.array(10);
    reply.bulk(spec.full_name.as_bytes());
    reply.integer(i64::from(spec.arity));
    let flags: Vec<&str> = flag::NAMES
        .iter()
        .filter(|(bit, _)| spec.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    reply.set(flags.len());
    for name in flags {
        reply.simple(name);
    }
    reply.integer(0);
    reply.integer(0);
    reply.integer(0);
    reply.set(spec.acl_categories.len());
    for category in spec.acl_categories {
        reply.simple(category);
    }
    reply.array(0);
    reply.array(0);
    reply.array(spec.subcommands.len());
    for sub in spec.subcommands {
        write_info(reply, sub);
    }
}

fn info(_: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let mut reply = out.reply();
    if args.len() == 2 {
        reply.array(COMMANDS.len());
        for spec in COMMANDS {
            write_info(&mut reply, spec);
        }
        return Flow::Continue;
    }
    reply.array(args.len() - 2);
    for name in &args[2..] {
        match find_any(name) {
            Some(spec) => write_info(&mut reply, spec),
            None => reply.null_array(),
        }
    }
    Flow::Continue
}

/// Looks up `name` or `container|sub`.
fn find_any(name: &[u8]) -> Option<&'static CommandSpec> {
    let lower = name.to_ascii_lowercase();
    match lower.iter().position(|&b| b == b'|') {
        None => lookup(&lower),
        Some(bar) => lookup(&lower[..bar]).and_then(|container| {
            container
                .subcommands
                .iter()
                .find(|sub| sub.name.as_bytes() == &lower[bar + 1..])
        }),
    }
}

fn write_docs(reply: &mut ReplyWriter<'_>, spec: &CommandSpec) {
    reply.bulk(spec.full_name.as_bytes());
    let fields = if spec.subcommands.is_empty() { 4 } else { 5 };
    reply.map(fields);
    reply.bulk(b"summary");
    reply.bulk(spec.summary.as_bytes());
    reply.bulk(b"since");
    reply.bulk(spec.since.as_bytes());
    reply.bulk(b"group");
    reply.bulk(spec.group.as_bytes());
    reply.bulk(b"complexity");
    reply.bulk(spec.complexity.as_bytes());
    if !spec.subcommands.is_empty() {
        reply.bulk(b"subcommands");
        reply.map(spec.subcommands.len());
        for sub in spec.subcommands {
            write_docs(reply, sub);
        }
    }
}

fn docs(_: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let specs: Vec<&CommandSpec> = if args.len() == 2 {
        COMMANDS.to_vec()
    } else {
        args[2..].iter().filter_map(|name| find_any(name)).collect()
    };
    let mut reply = out.reply();
    reply.map(specs.len());
    for spec in specs {
        write_docs(&mut reply, spec);
    }
    Flow::Continue
}

fn list(_: &mut Session, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
    let all = COMMANDS
        .iter()
        .flat_map(|spec| std::iter::once(*spec).chain(spec.subcommands.iter()));
    let names: Vec<&str> = match &args[2..] {
        [] => all.map(|spec| spec.full_name).collect(),
        [filterby, kind, value] if filterby.eq_ignore_ascii_case(b"filterby") => {
            match &kind.to_ascii_lowercase()[..] {
                b"pattern" => {
                    let glob = Glob::new(&value.to_ascii_lowercase());
                    all.filter(|spec| glob.matches(spec.full_name.as_bytes()))
                        .map(|spec| spec.full_name)
                        .collect()
                }
                b"aclcat" => {
                    let category =
                        format!("@{}", String::from_utf8_lossy(value).to_ascii_lowercase());
                    all.filter(|spec| spec.acl_categories.contains(&category.as_str()))
                        .map(|spec| spec.full_name)
                        .collect()
                }
                // Herald loads no modules.
                b"module" => Vec::new(),
                _ => {
                    out.error(SYNTAX_ERROR);
                    return Flow::Continue;
                }
            }
        }
        _ => {
            out.error(SYNTAX_ERROR);
            return Flow::Continue;
        }
    };
    let mut reply = out.reply();
    reply.array(names.len());
    for name in names {
        reply.bulk(name.as_bytes());
    }
    Flow::Continue
}
