//! PUBLISH, SUBSCRIBE and friends, PUBSUB introspection.
//!
//! Classic and shard pub/sub share one code path parameterised by [`Scope`] (as Redis's
//! `pubsub.c` strategy table): which engine map, which confirmation names, which count.
//! Confirmations are pushes and are sent even under CLIENT REPLY OFF/SKIP.

use bytes::Bytes;
use herald_engine::{Glob, Scope};

use super::{flag, reply_help, CommandSpec, BASE};
use crate::session::{Flow, Output, Session};

const SUBSCRIBE_FLAGS: u32 =
    flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::SUBSCRIBED_OK;
const PUBLISH_FLAGS: u32 = flag::PUBSUB
    | flag::LOADING
    | flag::STALE
    | flag::FAST
    | flag::MAY_REPLICATE
    | flag::STAGES_DELIVERIES;
const ACL_PUBSUB: &[&str] = &["@pubsub", "@slow"];
const ACL_PUBSUB_FAST: &[&str] = &["@pubsub", "@fast"];

/// `PUBLISH channel message`
pub const PUBLISH: CommandSpec = CommandSpec {
    name: "publish",
    full_name: "publish",
    arity: 3,
    flags: PUBLISH_FLAGS,
    group: "pubsub",
    summary: "Posts a message to a channel.",
    since: "2.0.0",
    complexity: "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
    acl_categories: ACL_PUBSUB_FAST,
    handler: Some(|session, out, args| publish(session, out, args, Scope::Classic)),
    ..BASE
};

/// `SPUBLISH shardchannel message`
pub const SPUBLISH: CommandSpec = CommandSpec {
    name: "spublish",
    full_name: "spublish",
    summary: "Post a message to a shard channel",
    since: "7.0.0",
    complexity: "O(N) where N is the number of clients subscribed to the receiving shard channel.",
    handler: Some(|session, out, args| publish(session, out, args, Scope::Shard)),
    ..PUBLISH
};

/// `SUBSCRIBE channel [channel ...]`
pub const SUBSCRIBE: CommandSpec = CommandSpec {
    name: "subscribe",
    full_name: "subscribe",
    arity: -2,
    flags: SUBSCRIBE_FLAGS,
    group: "pubsub",
    summary: "Listens for messages published to channels.",
    since: "2.0.0",
    complexity: "O(N) where N is the number of channels to subscribe to.",
    acl_categories: ACL_PUBSUB,
    handler: Some(|session, out, args| subscribe(session, out, &args[1..], Kind::Channel)),
    ..BASE
};

/// `UNSUBSCRIBE [channel [channel ...]]`
pub const UNSUBSCRIBE: CommandSpec = CommandSpec {
    name: "unsubscribe",
    full_name: "unsubscribe",
    arity: -1,
    summary: "Stops listening to messages posted to channels.",
    complexity: "O(N) where N is the number of channels to unsubscribe.",
    handler: Some(|session, out, args| unsubscribe(session, out, &args[1..], Kind::Channel)),
    ..SUBSCRIBE
};

/// `PSUBSCRIBE pattern [pattern ...]`
pub const PSUBSCRIBE: CommandSpec = CommandSpec {
    name: "psubscribe",
    full_name: "psubscribe",
    summary: "Listens for messages published to channels that match one or more patterns.",
    complexity: "O(N) where N is the number of patterns to subscribe to.",
    handler: Some(|session, out, args| subscribe(session, out, &args[1..], Kind::Pattern)),
    ..SUBSCRIBE
};

/// `PUNSUBSCRIBE [pattern [pattern ...]]`
pub const PUNSUBSCRIBE: CommandSpec = CommandSpec {
    name: "punsubscribe",
    full_name: "punsubscribe",
    summary: "Stops listening to messages published to channels that match one or more patterns.",
    complexity: "O(N) where N is the number of patterns to unsubscribe.",
    handler: Some(|session, out, args| unsubscribe(session, out, &args[1..], Kind::Pattern)),
    ..UNSUBSCRIBE
};

/// `SSUBSCRIBE shardchannel [shardchannel ...]`
pub const SSUBSCRIBE: CommandSpec = CommandSpec {
    name: "ssubscribe",
    full_name: "ssubscribe",
    since: "7.0.0",
    summary: "Listens for messages published to shard channels.",
    complexity: "O(N) where N is the number of shard channels to subscribe to.",
    handler: Some(|session, out, args| subscribe(session, out, &args[1..], Kind::Shard)),
    ..SUBSCRIBE
};

/// `SUNSUBSCRIBE [shardchannel [shardchannel ...]]`
pub const SUNSUBSCRIBE: CommandSpec = CommandSpec {
    name: "sunsubscribe",
    full_name: "sunsubscribe",
    since: "7.0.0",
    summary: "Stops listening to messages posted to shard channels.",
    complexity: "O(N) where N is the number of shard channels to unsubscribe.",
    handler: Some(|session, out, args| unsubscribe(session, out, &args[1..], Kind::Shard)),
    ..UNSUBSCRIBE
};

const PUBSUB_SUB: CommandSpec = CommandSpec {
    group: "pubsub",
    flags: flag::PUBSUB | flag::LOADING | flag::STALE,
    acl_categories: ACL_PUBSUB,
    since: "2.8.0",
    ..BASE
};

/// `PUBSUB <subcommand>`
pub const PUBSUB: CommandSpec = CommandSpec {
    name: "pubsub",
    full_name: "pubsub",
    arity: -2,
    group: "pubsub",
    summary: "A container for Pub/Sub commands.",
    since: "2.8.0",
    complexity: "Depends on subcommand.",
    acl_categories: &["@slow"],
    subcommands: &[
        CommandSpec {
            name: "channels",
            full_name: "pubsub|channels",
            arity: -2,
            summary: "Returns the active channels.",
            complexity: "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
            handler: Some(|session, out, args| channels(session, out, args, Scope::Classic)),
            ..PUBSUB_SUB
        },
        CommandSpec {
            name: "numsub",
            full_name: "pubsub|numsub",
            arity: -2,
            summary: "Returns a count of subscribers to channels.",
            complexity: "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
            handler: Some(|session, out, args| numsub(session, out, args, Scope::Classic)),
            ..PUBSUB_SUB
        },
        CommandSpec {
            name: "numpat",
            full_name: "pubsub|numpat",
            arity: 2,
            summary: "Returns a count of unique pattern subscriptions.",
            handler: Some(|session, out, _| {
                let count = session.shared.engine.pattern_count();
                out.reply().integer(count as i64);
                Flow::Continue
            }),
            ..PUBSUB_SUB
        },
        CommandSpec {
            name: "shardchannels",
            full_name: "pubsub|shardchannels",
            arity: -2,
            since: "7.0.0",
            summary: "Returns the active shard channels.",
            complexity: "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
            handler: Some(|session, out, args| channels(session, out, args, Scope::Shard)),
            ..PUBSUB_SUB
        },
        CommandSpec {
            name: "shardnumsub",
            full_name: "pubsub|shardnumsub",
            arity: -2,
            since: "7.0.0",
            summary: "Returns the count of subscribers of shard channels.",
            complexity: "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
            handler: Some(|session, out, args| numsub(session, out, args, Scope::Shard)),
            ..PUBSUB_SUB
        },
        CommandSpec {
            name: "help",
            full_name: "pubsub|help",
            arity: 2,
            summary: "Returns helpful text about the different subcommands.",
            handler: Some(|_, out, _| {
                reply_help(out, "pubsub", &[
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                    "SHARDCHANNELS [<pattern>]",
                    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "    Return the number of subscribers for the specified shard level channel(s)",
                ]);
                Flow::Continue
            }),
            ..PUBSUB_SUB
        },
    ],
    ..BASE
};

/// Which kind of subscription a command manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }

    /// The client's set of names of this kind.
    fn subscribed(self, session: &mut Session) -> &mut indexmap::IndexSet<Bytes> {
        let subscriptions = &mut session.subscriptions;
        match self {
            Kind::Channel => &mut subscriptions.channels,
            Kind::Pattern => &mut subscriptions.patterns,
            Kind::Shard => &mut subscriptions.shard_channels,
        }
    }

    /// The count confirmations report: channels + patterns, or shard channels alone.
    fn count(self, session: &Session) -> usize {
        match self {
            Kind::Channel | Kind::Pattern => session.subscriptions.classic_count(),
            Kind::Shard => session.subscriptions.shard_channels.len(),
        }
    }
}

fn publish(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], scope: Scope) -> Flow {
    let receivers = session.shared.engine.publish_deferred(
        scope,
        &args[1],
        &args[2],
        &mut session.pending_wakes,
    );
    out.reply().integer(receivers as i64);
    Flow::Continue
}

fn confirm(out: &mut Output<'_>, kind: &str, name: Option<&[u8]>, count: usize) {
    let mut push = out.push();
    push.push(3);
    push.bulk(kind.as_bytes());
    push.optional_bulk(name);
    push.integer(count as i64);
}

fn subscribe(session: &mut Session, out: &mut Output<'_>, names: &[Bytes], kind: Kind) -> Flow {
    let outbox = std::sync::Arc::clone(session.outbox());
    let shared = std::sync::Arc::clone(&session.shared);
    let engine = &shared.engine;
    for name in names {
        let added = match kind {
            Kind::Channel => engine.subscribe(Scope::Classic, name.clone(), &outbox),
            Kind::Shard => engine.subscribe(Scope::Shard, name.clone(), &outbox),
            Kind::Pattern => engine.psubscribe(name.clone(), &outbox),
        };
        if added {
            // Owned: a slice would pin the whole network read buffer it arrived in for
            // as long as the subscription lasts (most of an idle subscriber's memory).
            kind.subscribed(session)
                .insert(Bytes::copy_from_slice(name));
        }
        confirm(out, kind.names().0, Some(name), kind.count(session));
    }
    session.update_client_class();
    Flow::Continue
}

fn unsubscribe(session: &mut Session, out: &mut Output<'_>, names: &[Bytes], kind: Kind) -> Flow {
    let targets: Vec<Bytes> = if names.is_empty() {
        kind.subscribed(session).iter().cloned().collect()
    } else {
        names.to_vec()
    };
    let reply_name = kind.names().1;
    if targets.is_empty() {
        confirm(out, reply_name, None, kind.count(session));
        return Flow::Continue;
    }
    let id = session.handle.id;
    for name in &targets {
        let engine = &session.shared.engine;
        let removed = match kind {
            Kind::Channel => engine.unsubscribe(Scope::Classic, name, id),
            Kind::Shard => engine.unsubscribe(Scope::Shard, name, id),
            Kind::Pattern => engine.punsubscribe(name, id),
        };
        if removed {
            kind.subscribed(session).shift_remove(name);
        }
        confirm(out, reply_name, Some(name), kind.count(session));
    }
    session.update_client_class();
    Flow::Continue
}

fn channels(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], scope: Scope) -> Flow {
    // Redis ignores arguments after the pattern.
    let filter = args.get(2).map(|pattern| Glob::new(pattern));
    let names = session.shared.engine.channels(scope, filter.as_ref());
    let mut reply = out.reply();
    reply.array(names.len());
    for name in &names {
        reply.bulk(name);
    }
    Flow::Continue
}

fn numsub(session: &mut Session, out: &mut Output<'_>, args: &[Bytes], scope: Scope) -> Flow {
    let engine = &session.shared.engine;
    let mut reply = out.reply();
    // A flat array, not a map, in RESP3 too (as Redis).
    reply.array((args.len() - 2) * 2);
    for channel in &args[2..] {
        reply.bulk(channel);
        reply.integer(engine.subscriber_count(scope, channel) as i64);
    }
    Flow::Continue
}
