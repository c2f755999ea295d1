//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! MULTI opens a queue in the session; commands are checked as they are queued (a
//! refused one makes EXEC answer EXECABORT) and run at EXEC under
//! [`herald_store::Store::atomically`], so no other client's keyspace command interleaves.
//! WATCH registers a dirty flag with the store for each key; any change or expiry of a
//! watched key sets it and EXEC then answers a null array. Messages the transaction
//! publishes to its own connection follow the EXEC reply (the outbox holds them until
//! the command's reply is queued).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::{flag, CommandSpec, BASE};
use crate::session::{Flow, Output, Session, Transaction, Watch};

const TRANSACTION: CommandSpec = CommandSpec {
    group: "transactions",
    flags: flag::NOSCRIPT
        | flag::LOADING
        | flag::STALE
        | flag::FAST
        | flag::ALLOW_BUSY
        | flag::RUNS_IN_MULTI,
    acl_categories: &["@fast", "@transaction"],
    since: "1.2.0",
    ..BASE
};

/// `MULTI`
pub const MULTI: CommandSpec = CommandSpec {
    name: "multi",
    full_name: "multi",
    arity: 1,
    summary: "Starts a transaction.",
    handler: Some(|session, out, _| {
        if session.transaction.is_some() {
            out.error("ERR MULTI calls can not be nested");
        } else {
            session.transaction = Some(Transaction::default());
            out.ok();
        }
        Flow::Continue
    }),
    ..TRANSACTION
};

/// `DISCARD`
pub const DISCARD: CommandSpec = CommandSpec {
    name: "discard",
    full_name: "discard",
    arity: 1,
    since: "2.0.0",
    summary: "Discards a transaction.",
    complexity: "O(N), when N is the number of queued commands",
    handler: Some(|session, out, _| {
        if session.transaction.take().is_none() {
            out.error("ERR DISCARD without MULTI");
        } else {
            session.unwatch_all();
            out.ok();
        }
        Flow::Continue
    }),
    ..TRANSACTION
};

fn exec(session: &mut Session, out: &mut Output<'_>, _: &[Bytes]) -> Flow {
    let Some(transaction) = session.transaction.take() else {
        out.error("ERR EXEC without MULTI");
        return Flow::Continue;
    };
    let dirty = session
        .watch
        .as_ref()
        .is_some_and(|watch| watch.dirty.load(Ordering::Relaxed));
    if transaction.aborted {
        session.unwatch_all();
        out.error("EXECABORT Transaction discarded because of previous errors.");
        return Flow::Continue;
    }
    let shared = Arc::clone(&session.shared);
    let persistence = shared.persistence();
    let mut flow = Flow::Continue;
    shared.store.atomically(|| {
        // A watched key that expired since WATCH counts as changed even if nobody
        // touched it: reading its expiry reclaims it and sets the flag.
        if let Some(watch) = session.watch.as_ref() {
            let now = shared.now_ms();
            shared.store.with(|keyspace| {
                for (db, key) in &watch.keys {
                    if let Ok(db) = keyspace.db(*db) {
                        db.expiry(key, now);
                    }
                }
                if let Some(persistence) = &persistence {
                    persistence.log_effects(keyspace);
                }
            });
        }
        // Checked under the lock: a change that lands between the check and the first
        // queued command would otherwise slip through.
        let dirty = dirty
            || session
                .watch
                .as_ref()
                .is_some_and(|watch| watch.dirty.load(Ordering::Relaxed));
        session.unwatch_all();
        if dirty {
            out.reply().null_array();
            return;
        }
        out.reply().array(transaction.queued.len());
        session.executing_transaction = true;
        session.transaction_log.clear();
        for (spec, args) in &transaction.queued {
            if session.run_now(spec, out, args) == Flow::Close {
                flow = Flow::Close;
            }
        }
        session.executing_transaction = false;
        // The transaction's writes are logged as one MULTI/EXEC unit, still under the
        // lock, so a replay applies all of them or (if the file ends inside) none.
        let records = std::mem::take(&mut session.transaction_log);
        if let Some(persistence) = &persistence {
            let logged =
                persistence.log(records.iter().map(|(db, record)| (*db, &record[..])), true);
            session.note_logged(logged);
        }
    });
    // Clients blocked on keys the transaction filled are served after it, as in Redis.
    let (flags, events) = shared.store.with(|keyspace| {
        keyspace.serve_blocked(shared.now_ms());
        if let Some(persistence) = &persistence {
            persistence.log_effects(keyspace);
        }
        (keyspace.notify_flags(), keyspace.take_events())
    });
    super::publish_key_events(&shared, flags, events);
    flow
}

/// `EXEC`
pub const EXEC: CommandSpec = CommandSpec {
    name: "exec",
    full_name: "exec",
    arity: 1,
    since: "1.2.0",
    flags: flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::RUNS_IN_MULTI,
    summary: "Executes all commands in a transaction.",
    complexity: "Depends on commands in the transaction",
    acl_categories: &["@slow", "@transaction"],
    handler: Some(exec),
    ..TRANSACTION
};

/// `WATCH key [key ...]`
pub const WATCH: CommandSpec = CommandSpec {
    name: "watch",
    full_name: "watch",
    arity: -2,
    since: "2.2.0",
    summary: "Monitors changes to keys to determine the execution of a transaction.",
    complexity: "O(1) for every key.",
    handler: Some(|session, out, args| {
        if session.transaction.is_some() {
            out.error("ERR WATCH inside MULTI is not allowed");
            return Flow::Continue;
        }
        let db = session.db;
        let watch = session.watch.get_or_insert_with(Watch::default);
        let dirty = Arc::clone(&watch.dirty);
        let mut added = Vec::new();
        session.shared.store.with(|keyspace| {
            if let Ok(store_db) = keyspace.db(db) {
                for key in &args[1..] {
                    store_db.watch(key, &dirty);
                    added.push((db, Bytes::copy_from_slice(key)));
                }
            }
        });
        if let Some(watch) = session.watch.as_mut() {
            watch.keys.extend(added);
        }
        out.ok();
        Flow::Continue
    }),
    ..TRANSACTION
};

/// `UNWATCH`
pub const UNWATCH: CommandSpec = CommandSpec {
    name: "unwatch",
    full_name: "unwatch",
    arity: 1,
    since: "2.2.0",
    flags: flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY,
    summary: "Forgets about watched keys of a transaction.",
    handler: Some(|session, out, _| {
        session.unwatch_all();
        out.ok();
        Flow::Continue
    }),
    ..TRANSACTION
};
