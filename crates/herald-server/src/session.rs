//! A connection's session: protocol version, authentication, selected database,
//! subscriptions and reply mode, and the checks every command passes before it runs.
//!
//! The session is a state machine, not a nested subscribe loop: in RESP2 a client with
//! subscriptions may only run the commands flagged as allowed in that context; in RESP3
//! it may run anything while pushes arrive. The session owns the client → subscriptions
//! half of the two-way index; the engine owns the other half.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use herald_engine::{ClientClass, Outbox, PendingWakes, Scope};
use herald_proto::{Protocol, ReplyWriter};
use indexmap::IndexSet;

use crate::clients::ClientHandle;
use crate::command::{self, CommandSpec, Resolved};
use crate::persistence::Persistence;
use crate::server::Shared;
use crate::writer::ProtocolCell;

/// What the connection does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading requests.
    Continue,
    /// Flush the replies so far and close (QUIT, CLIENT KILL of oneself).
    Close,
    /// The command blocked (BLPOP and friends): the connection waits for
    /// [`Session::blocked`] to be served or to time out before reading on.
    Block,
    /// SHUTDOWN: the connection makes the data durable ([`command::shutdown::prepare`])
    /// and stops the server, or replies with why it could not.
    Shutdown(command::shutdown::ShutdownRequest),
    /// WAIT or WAITAOF that could not answer at once: the connection waits as
    /// [`Session::ack_wait`] says (the fsync or the timeout), then replies. The request
    /// lives in the session, not here: every handler returns a `Flow`, which must stay a
    /// few bytes.
    WaitAcks,
}

/// How the running write command goes into the append-only file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Propagate {
    /// As the client sent it, unless it replied with an error.
    #[default]
    Verbatim,
    /// As these commands instead, in the session's database (relative expiry made
    /// absolute, the pop a blocking command performed); empty when nothing changed.
    As(Vec<Vec<Bytes>>),
}

/// CLIENT REPLY state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Replies are sent.
    On,
    /// Replies are suppressed until CLIENT REPLY ON.
    Off,
    /// The next command's reply is suppressed.
    SkipNext,
}

/// Where a command writes: its reply (suppressible by CLIENT REPLY) and pushes
/// (subscription confirmations, never suppressed) share one ordered buffer.
#[derive(Debug)]
pub struct Output<'a> {
    buffer: &'a mut BytesMut,
    discarded: BytesMut,
    suppressed: bool,
    protocol: Protocol,
    errors: u32,
}

impl<'a> Output<'a> {
    /// An output writing to `buffer`, for handlers' unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(buffer: &'a mut BytesMut, protocol: Protocol) -> Self {
        Self::new(buffer, protocol, false)
    }

    fn new(buffer: &'a mut BytesMut, protocol: Protocol, suppressed: bool) -> Self {
        Output {
            buffer,
            discarded: BytesMut::new(),
            suppressed,
            protocol,
            errors: 0,
        }
    }

    /// Error replies written so far: a write command that failed is not logged.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// The writer for the command's reply.
    pub fn reply(&mut self) -> ReplyWriter<'_> {
        if self.suppressed {
            self.discarded.clear();
            ReplyWriter::new(&mut self.discarded, self.protocol)
        } else {
            ReplyWriter::new(self.buffer, self.protocol)
        }
    }

    /// The writer for pushes that CLIENT REPLY OFF/SKIP must not suppress.
    pub fn push(&mut self) -> ReplyWriter<'_> {
        ReplyWriter::new(self.buffer, self.protocol)
    }

    /// Shorthand for an error reply.
    pub fn error(&mut self, text: &str) {
        self.errors += 1;
        self.reply().error(text);
    }

    /// Shorthand for `+OK`.
    pub fn ok(&mut self) {
        self.reply().ok();
    }

    /// Changes suppression mid-command (CLIENT REPLY ON must be answered).
    pub fn set_suppressed(&mut self, suppressed: bool) {
        self.suppressed = suppressed;
    }

    /// Switches the encoding of the rest of this command's output (HELLO).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }
}

/// The subscriptions of one client, in subscription order.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// SUBSCRIBE channels.
    pub channels: IndexSet<Bytes>,
    /// PSUBSCRIBE patterns.
    pub patterns: IndexSet<Bytes>,
    /// SSUBSCRIBE shard channels.
    pub shard_channels: IndexSet<Bytes>,
}

impl Subscriptions {
    /// Channels plus patterns: the count SUBSCRIBE/PSUBSCRIBE confirmations report.
    pub fn classic_count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Subscriptions of every kind.
    pub fn total(&self) -> usize {
        self.classic_count() + self.shard_channels.len()
    }
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    /// Server-wide state.
    pub shared: Arc<Shared>,
    /// This client as others see it.
    pub handle: Arc<ClientHandle>,
    protocol_cell: Arc<ProtocolCell>,
    /// Protocol version of replies.
    pub protocol: Protocol,
    /// True once AUTH/HELLO AUTH succeeded, or when no password is set.
    pub authenticated: bool,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// SELECTed database.
    pub db: usize,
    /// What this client is subscribed to.
    pub subscriptions: Subscriptions,
    /// CLIENT REPLY state.
    pub reply_mode: ReplyMode,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Bytes>,
    /// Full name of the command being run (CLIENT LIST `cmd=`).
    current_command: &'static str,
    /// Commands queued since MULTI.
    pub transaction: Option<Transaction>,
    /// Keys this client WATCHes, and the flag any change to them sets.
    pub watch: Option<Watch>,
    /// The wait a blocking command left for the connection ([`Flow::Block`]).
    pub blocked: Option<Blocked>,
    /// Subscribers this batch of commands published to, flushed by the connection once
    /// the batch is done (see [`herald_engine::Engine::publish_deferred`]).
    pub pending_wakes: PendingWakes,
    /// How the write command being run is logged; handlers that must be logged in
    /// another form set it ([`Session::propagate_as`]).
    pub propagate: Propagate,
    /// True while EXEC runs the queue: writes are logged as one unit at its end.
    pub executing_transaction: bool,
    /// In MONITOR mode (`crate::monitor`).
    pub monitoring: bool,
    /// What the connection waits for after [`Flow::WaitAcks`].
    pub ack_wait: Option<command::waits::AckWait>,
    /// The records of the transaction being executed.
    pub transaction_log: Vec<(usize, Vec<Bytes>)>,
    /// The last append-only file record this client's writes produced, and the last one
    /// its replies already waited for.
    aof_sequence: u64,
    aof_acknowledged: u64,
    /// Calls of one command not yet added to the shared counts.
    uncounted: Option<(&'static str, u64)>,
    /// The last command name looked up.
    lookup_cache: command::LookupCache,
}

/// How a served or timed-out blocking command replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockedReply {
    /// BLPOP/BRPOP: `[key, element]`.
    KeyAndElement,
    /// BLMPOP: `[key, [elements]]`.
    KeyAndElements,
    /// BLMOVE/BRPOPLPUSH: the element.
    Element,
    /// XREAD/XREADGROUP: entries per key (a map in RESP3).
    Streams,
}

/// A client waiting on lists.
#[derive(Debug)]
pub struct Blocked {
    /// Its registration in the store.
    pub waiter: Arc<herald_store::blocking::Waiter>,
    /// Where the store sends what it served.
    pub served: tokio::sync::oneshot::Receiver<herald_store::blocking::Served>,
    /// When it gives up (`None`: never).
    pub deadline: Option<tokio::time::Instant>,
    /// The database it waits in.
    pub db: usize,
    /// The reply's shape.
    pub reply: BlockedReply,
}

/// A MULTI block being queued.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Commands to run at EXEC, already checked.
    pub queued: Vec<(&'static CommandSpec, Vec<Bytes>)>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// The keys a client WATCHes.
#[derive(Debug, Default)]
pub struct Watch {
    /// Set by the store when any watched key changes or expires.
    pub dirty: Arc<AtomicBool>,
    /// (database, key) pairs registered with the store.
    pub keys: Vec<(usize, Bytes)>,
}

impl Session {
    /// A fresh session (RESP2, db 0, authenticated only when no password is set).
    pub fn new(
        shared: Arc<Shared>,
        handle: Arc<ClientHandle>,
        protocol_cell: Arc<ProtocolCell>,
    ) -> Self {
        let pending_wakes = PendingWakes::staging_for(&handle.outbox);
        Session {
            authenticated: false,
            shared,
            handle,
            protocol_cell,
            protocol: Protocol::Resp2,
            name: None,
            db: 0,
            subscriptions: Subscriptions::default(),
            reply_mode: ReplyMode::On,
            lib_name: None,
            lib_ver: None,
            current_command: "NULL",
            transaction: None,
            watch: None,
            blocked: None,
            pending_wakes,
            propagate: Propagate::Verbatim,
            executing_transaction: false,
            monitoring: false,
            ack_wait: None,
            transaction_log: Vec::new(),
            aof_sequence: 0,
            aof_acknowledged: 0,
            uncounted: None,
            lookup_cache: command::LookupCache::default(),
        }
    }

    /// Logs the running write command as `commands` instead of as sent (`[]`: nothing).
    pub fn propagate_as(&mut self, commands: Vec<Vec<Bytes>>) {
        self.propagate = Propagate::As(commands);
    }

    /// The last append-only file record this client's writes produced (0: none yet), for
    /// WAITAOF.
    pub fn last_logged(&self) -> u64 {
        self.aof_sequence
    }

    /// Notes an append-only file record the client's next replies must wait for.
    pub fn note_logged(&mut self, sequence: Option<u64>) {
        if let Some(sequence) = sequence {
            self.aof_sequence = self.aof_sequence.max(sequence);
        }
    }

    /// What the replies written so far must wait for before they are sent: under
    /// `appendfsync always`, the fsync of the writes they acknowledge. `None` when
    /// nothing is pending.
    pub fn durability_wait(
        &mut self,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.durability_wait_then(|| Box::new(|| {}))
    }

    /// Like [`Self::durability_wait`]; when there is a wait, `make_then` is called for
    /// an action that runs exactly once before the wait ends: on the append-only file's
    /// thread right after the fsync, or sooner (see
    /// [`herald_store::aof::AofWriter::durable_then`]).
    pub fn durability_wait_then(
        &mut self,
        make_then: impl FnOnce() -> Box<dyn FnOnce() + Send>,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if self.aof_sequence <= self.aof_acknowledged {
            return None;
        }
        self.aof_acknowledged = self.aof_sequence;
        let persistence = self.shared.persistence_now();
        let writer = persistence.as_ref()?.writer();
        // Only `always` promises durability before the reply. Under `everysec` and `no`
        // the writer thread writes at once and the reply does not wait for it, as Redis
        // promises there: what a crash loses is bounded by the fsync interval.
        if writer.policy() != herald_store::aof::FsyncPolicy::Always {
            return None;
        }
        Some(writer.durable_then(self.aof_sequence, make_then()))
    }

    /// Replays one command from the append-only file: no checks, no reply, no waiting
    /// (a blocking command that would block gives up at once). False when the command is
    /// unknown or has the wrong number of arguments.
    pub fn replay(&mut self, args: &[Bytes]) -> bool {
        let Resolved::Command(spec) = command::resolve(args) else {
            return false;
        };
        let mut scratch = BytesMut::new();
        let mut out = Output::new(&mut scratch, self.protocol, true);
        if self.run_now(spec, &mut out, args) == Flow::Block {
            if let Some(blocked) = self.blocked.take() {
                blocked.waiter.cancel();
                self.shared.store.with(|keyspace| {
                    if let Ok(db) = keyspace.db(blocked.db) {
                        db.waiters_mut().unblock(&blocked.waiter);
                    }
                });
            }
        }
        true
    }

    /// True when the client may run commands: it authenticated, or no password is set.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated || !self.shared.config.auth_required()
    }

    /// Full name of the command being run (`expire`, `client|list`).
    pub fn current_command(&self) -> &'static str {
        self.current_command
    }

    /// This client's outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.handle.outbox
    }

    /// Switches the protocol for replies and for deliveries encoded from now on.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        self.protocol_cell.set(protocol);
    }

    /// Writes an error that CLIENT REPLY does not suppress (protocol errors close the
    /// connection; the client must see why).
    pub fn reply_error(&self, buffer: &mut BytesMut, text: &str) {
        ReplyWriter::new(buffer, self.protocol).error(text);
    }

    /// Runs one request (the command name and its arguments), appending its output to
    /// `buffer`.
    pub fn execute(&mut self, args: &[Bytes], buffer: &mut BytesMut) -> Flow {
        let skip_this = self.reply_mode == ReplyMode::SkipNext;
        let suppressed = skip_this || self.reply_mode == ReplyMode::Off;
        let mut out = Output::new(buffer, self.protocol, suppressed);
        let (flow, full_name) = match command::resolve_cached(args, &mut self.lookup_cache) {
            Resolved::Command(spec) => {
                self.current_command = spec.full_name;
                // Before it runs, so the counts it may read include the commands before it.
                self.count_command(spec.full_name);
                (self.run(spec, &mut out, args), spec.full_name)
            }
            Resolved::Rejected { error, full_name } => {
                self.count_command(full_name);
                self.flag_transaction();
                out.error(&error);
                (Flow::Continue, full_name)
            }
        };
        if skip_this && self.reply_mode == ReplyMode::SkipNext {
            self.reply_mode = ReplyMode::On;
        }
        self.current_command = full_name;
        flow
    }

    /// Counts one call of `full_name` (`herald_server_commands_total`). A run of the same command
    /// (a pipeline) is added to the shared counter once, when another command comes or
    /// the batch ends ([`Self::flush_command_counts`]): that counter is one cache line
    /// every core writes.
    fn count_command(&mut self, full_name: &'static str) {
        match &mut self.uncounted {
            Some((name, calls)) if std::ptr::eq(*name, full_name) => *calls += 1,
            _ => {
                self.flush_command_counts();
                self.uncounted = Some((full_name, 1));
            }
        }
    }

    /// Adds the calls held back since the command changed to the shared counts. The
    /// connection calls it at the end of every batch, before the replies go out, so a
    /// client that saw its reply also sees its command counted.
    pub fn flush_command_counts(&mut self) {
        if let Some((full_name, calls)) = self.uncounted.take() {
            self.shared.stats.commands.count_calls(full_name, calls);
        }
    }

    /// Why `spec` may not run now, as Redis's error text.
    fn rejection(&self, spec: &CommandSpec) -> Option<String> {
        if !spec.no_auth() && !self.is_authenticated() {
            return Some("NOAUTH Authentication required.".to_owned());
        }
        let keyspace_or_replicated =
            command::flag::WRITE | command::flag::READONLY | command::flag::MAY_REPLICATE;
        if self.monitoring && spec.flags & keyspace_or_replicated != 0 {
            // Redis 7 counts a monitor as a replica, and replicas may not use the keyspace.
            return Some("ERR Replica can't interact with the keyspace".to_owned());
        }
        if self.protocol == Protocol::Resp2
            && self.subscriptions.total() > 0
            && !spec.allowed_while_subscribed()
        {
            return Some(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.full_name
            ));
        }
        None
    }

    /// `-MISCONF` for a write while the append-only file cannot be written.
    fn persistence_refusal(&self, spec: &CommandSpec) -> Option<String> {
        if spec.flags & command::flag::WRITE == 0 {
            return None;
        }
        self.shared
            .persistence_now()
            .as_ref()?
            .check_writable()
            .err()
    }

    /// Marks an open transaction as failed: its EXEC will answer EXECABORT.
    fn flag_transaction(&mut self) {
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.aborted = true;
        }
    }

    fn run(&mut self, spec: &'static CommandSpec, out: &mut Output<'_>, args: &[Bytes]) -> Flow {
        let refused = self
            .rejection(spec)
            .or_else(|| self.persistence_refusal(spec));
        if let Some(error) = refused {
            self.flag_transaction();
            out.error(&error);
            return Flow::Continue;
        }
        if let Some(transaction) = self.transaction.as_mut() {
            if spec.refused_inside_multi() {
                transaction.aborted = true;
                out.error("ERR Command not allowed inside a transaction");
                return Flow::Continue;
            }
            if !spec.runs_inside_multi() {
                transaction.queued.push((spec, args.to_vec()));
                out.reply().simple("QUEUED");
                return Flow::Continue;
            }
        }
        self.run_now(spec, out, args)
    }

    /// Runs a command's handler without the checks (EXEC runs its queue this way; the
    /// checks ran when each command was queued).
    pub fn run_now(
        &mut self,
        spec: &'static CommandSpec,
        out: &mut Output<'_>,
        args: &[Bytes],
    ) -> Flow {
        let Some(handler) = spec.handler else {
            // `command::resolve` never returns a container without its subcommand.
            out.error(&command::wrong_arity(spec.full_name));
            return Flow::Continue;
        };
        if spec.flags & command::flag::STAGES_DELIVERIES == 0 {
            // Whatever this command causes elsewhere (a keyspace event, a blocked
            // client's reply) must follow the deliveries of the publishes before it.
            self.pending_wakes.commit();
        }
        if spec.flags & command::flag::WRITE == 0 {
            let flow = handler(self, out, args);
            self.feed_monitors(spec, out, args);
            return flow;
        }
        // The keyspace lock first, then the file: CONFIG SET appendonly yes installs the
        // file and then snapshots the keyspace under this lock, so a write either sees
        // no file and lands before the snapshot (which holds it), or sees the file and
        // is logged. Read the other way round, a write could see no file, then run
        // after the snapshot, and be in neither.
        let flow = {
            let _held = self.shared.store.hold();
            let guard = self.shared.persistence_now();
            match guard.as_ref() {
                Some(persistence) => self.run_logged(persistence, handler, out, args),
                None => handler(self, out, args),
            }
        };
        // With the keyspace unlocked: monitors are not the writers' business.
        self.feed_monitors(spec, out, args);
        flow
    }

    /// Shows the command that just ran to the clients in MONITOR mode (`crate::monitor`):
    /// not administrative ones, as Redis. A monitor's own command follows its reply in
    /// its output; inside a transaction it is not shown to itself, where the line would
    /// land inside EXEC's reply.
    #[inline]
    fn feed_monitors(&self, spec: &CommandSpec, out: &mut Output<'_>, args: &[Bytes]) {
        if self.shared.monitors.any() && spec.flags & command::flag::ADMIN == 0 {
            self.show_to_monitors(out, args);
        }
    }

    #[cold]
    #[inline(never)]
    fn show_to_monitors(&self, out: &mut Output<'_>, args: &[Bytes]) {
        let monitors = &self.shared.monitors;
        let line = crate::monitor::line(
            crate::server::unix_time_micros(),
            self.db,
            self.handle.peer,
            args,
        );
        monitors.send(&line, self.handle.id);
        if self.monitoring && !self.executing_transaction {
            out.push().raw(&line);
        }
    }

    /// Runs a write command with the keyspace locked throughout, then logs it (in the
    /// form its handler chose) before anything else can change the keyspace, then serves
    /// the clients blocked on what it filled and logs their pops after it.
    fn run_logged(
        &mut self,
        persistence: &Persistence,
        handler: command::Handler,
        out: &mut Output<'_>,
        args: &[Bytes],
    ) -> Flow {
        self.propagate = Propagate::Verbatim;
        let errors = out.errors();
        let flow = handler(self, out, args);
        let failed = out.errors() != errors;
        let propagate = std::mem::take(&mut self.propagate);
        let db = self.db;
        if self.executing_transaction {
            match propagate {
                Propagate::Verbatim if !failed => self.transaction_log.push((db, args.to_vec())),
                Propagate::Verbatim => {}
                Propagate::As(records) => self
                    .transaction_log
                    .extend(records.into_iter().map(|record| (db, record))),
            }
            return flow;
        }
        // Encoded straight from the request's arguments: logging copies no argument.
        let logged = match &propagate {
            Propagate::Verbatim if !failed => persistence.log([(db, args)], false),
            Propagate::Verbatim => None,
            Propagate::As(records) => {
                persistence.log(records.iter().map(|record| (db, &record[..])), false)
            }
        };
        self.note_logged(logged);
        let (flags, events) = self.shared.store.with(|keyspace| {
            if !keyspace.has_pending() {
                return (0, Vec::new());
            }
            if keyspace.has_ready() {
                keyspace.serve_blocked(self.shared.now_ms());
            }
            persistence.log_effects(keyspace);
            (keyspace.notify_flags(), keyspace.take_events())
        });
        command::publish_key_events(&self.shared, flags, events);
        flow
    }

    /// Publishes the fields other connections read (CLIENT LIST, INFO) into the
    /// client's handle. The connection calls it once per batch of pipelined requests,
    /// and CLIENT LIST/INFO call it first so the caller sees itself up to date.
    pub fn mirror_now(&self) {
        let last_command = self.current_command;
        let mut meta = self.handle.meta.lock();
        meta.name.clone_from(&self.name);
        meta.db = self.db;
        meta.channels = self.subscriptions.channels.len();
        meta.patterns = self.subscriptions.patterns.len();
        meta.shard_channels = self.subscriptions.shard_channels.len();
        meta.last_command = last_command;
        meta.last_active = Instant::now();
        meta.protocol = self.protocol;
        meta.lib_name.clone_from(&self.lib_name);
        meta.lib_ver.clone_from(&self.lib_ver);
        meta.user = "default";
        meta.monitoring = self.monitoring;
    }

    /// Keeps the outbox's limit class in step with MONITOR and the subscription count.
    pub fn update_client_class(&self) {
        let class = if self.monitoring {
            ClientClass::Replica
        } else if self.subscriptions.total() > 0 {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        };
        self.outbox().set_class(class);
    }

    /// Drops every subscription (RESET, disconnect) without sending confirmations.
    pub fn drop_subscriptions(&mut self) {
        let id = self.handle.id;
        let engine = &self.shared.engine;
        for channel in self.subscriptions.channels.drain(..) {
            engine.unsubscribe(Scope::Classic, &channel, id);
        }
        for channel in self.subscriptions.shard_channels.drain(..) {
            engine.unsubscribe(Scope::Shard, &channel, id);
        }
        for pattern in self.subscriptions.patterns.drain(..) {
            engine.punsubscribe(&pattern, id);
        }
        self.update_client_class();
    }

    /// Forgets every WATCHed key (UNWATCH, EXEC, DISCARD, RESET, disconnect).
    pub fn unwatch_all(&mut self) {
        let Some(watch) = self.watch.take() else {
            return;
        };
        self.shared.store.with(|keyspace| {
            for (db, key) in &watch.keys {
                if let Ok(db) = keyspace.db(*db) {
                    db.unwatch(key, &watch.dirty);
                }
            }
        });
    }

    /// Cleans up when the connection ends.
    pub fn teardown(&mut self) {
        self.drop_subscriptions();
        self.unwatch_all();
    }
}

#[cfg(test)]
mod tests {
    use super::Flow;

    #[test]
    fn a_flow_stays_small_enough_to_return_in_a_register() {
        // Every handler returns one: a request with data (WAIT's) lives in the session,
        // so that this stays in registers (40 bytes went through memory on every command).
        assert!(
            std::mem::size_of::<Flow>() <= 8,
            "{}",
            std::mem::size_of::<Flow>()
        );
    }
}
