//! The table of connected clients: what CLIENT LIST/KILL/INFO and INFO clients read.
//!
//! Each connection's session owns its state; after every command it mirrors the few
//! fields that other connections may inspect into its [`ClientHandle`] (one short,
//! uncontended lock). The table itself is a `parking_lot::Mutex<HashMap>` touched on
//! connect, disconnect and introspection only, never on the publish path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use herald_engine::{ClientId, Outbox};
use herald_proto::Protocol;
use parking_lot::Mutex;

/// Fields of a session visible to other connections.
#[derive(Clone, Debug)]
pub struct ClientMeta {
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// Selected database.
    pub db: usize,
    /// Classic channel subscriptions.
    pub channels: usize,
    /// Pattern subscriptions.
    pub patterns: usize,
    /// Shard channel subscriptions.
    pub shard_channels: usize,
    /// Full name of the last command (`client|list`).
    pub last_command: &'static str,
    /// When the last command ran.
    pub last_active: Instant,
    /// Protocol version in use.
    pub protocol: Protocol,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Bytes>,
    /// Authenticated user name.
    pub user: &'static str,
    /// In MONITOR mode (CLIENT LIST flag `O`).
    pub monitoring: bool,
}

/// One connected client as other connections see it.
#[derive(Debug)]
pub struct ClientHandle {
    /// CLIENT ID.
    pub id: ClientId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Our side of the connection.
    pub local: SocketAddr,
    /// When it connected.
    pub connected_at: Instant,
    /// Its outgoing queue (killing it closes the connection).
    pub outbox: Arc<Outbox>,
    /// Mirrored session fields.
    pub meta: Mutex<ClientMeta>,
}

impl ClientHandle {
    /// A handle for a fresh connection.
    pub fn new(id: ClientId, peer: SocketAddr, local: SocketAddr, outbox: Arc<Outbox>) -> Self {
        let now = Instant::now();
        ClientHandle {
            id,
            peer,
            local,
            connected_at: now,
            outbox,
            meta: Mutex::new(ClientMeta {
                monitoring: false,
                name: None,
                db: 0,
                channels: 0,
                patterns: 0,
                shard_channels: 0,
                last_command: "NULL",
                last_active: now,
                protocol: Protocol::Resp2,
                lib_name: None,
                lib_ver: None,
                user: "default",
            }),
        }
    }

    /// True when the client holds any subscription (Redis's pubsub client type).
    pub fn is_pubsub(&self) -> bool {
        let meta = self.meta.lock();
        meta.channels + meta.patterns + meta.shard_channels > 0
    }

    /// The CLIENT LIST / CLIENT INFO line (without the trailing newline).
    pub fn describe(&self, now: Instant) -> String {
        let meta = self.meta.lock().clone();
        let text = |value: &Option<Bytes>| {
            value
                .as_ref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default()
        };
        let subscribed = meta.channels + meta.patterns + meta.shard_channels > 0;
        let omem = self.outbox.queued_bytes();
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} \
             multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem={omem} tot-mem={omem} events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            text(&meta.name),
            now.saturating_duration_since(self.connected_at).as_secs(),
            now.saturating_duration_since(meta.last_active).as_secs(),
            if meta.monitoring {
                "O"
            } else if subscribed {
                "P"
            } else {
                "N"
            },
            meta.db,
            meta.channels,
            meta.patterns,
            meta.shard_channels,
            meta.last_command,
            meta.user,
            meta.protocol.version(),
            text(&meta.lib_name),
            text(&meta.lib_ver),
        )
    }
}

/// Why a client could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyClients;

/// All connected clients.
#[derive(Debug, Default)]
pub struct ClientTable {
    clients: Mutex<HashMap<ClientId, Arc<ClientHandle>>>,
}

impl ClientTable {
    /// Adds a client unless `maxclients` are already connected.
    pub fn register(
        &self,
        handle: Arc<ClientHandle>,
        maxclients: usize,
    ) -> Result<(), TooManyClients> {
        let mut clients = self.clients.lock();
        if clients.len() >= maxclients {
            return Err(TooManyClients);
        }
        clients.insert(handle.id, handle);
        Ok(())
    }

    /// Removes a client that disconnected.
    pub fn unregister(&self, id: ClientId) {
        self.clients.lock().remove(&id);
    }

    /// Connected clients, in id order.
    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        let mut clients: Vec<_> = self.clients.lock().values().cloned().collect();
        clients.sort_by_key(|client| client.id);
        clients
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
