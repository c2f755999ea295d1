//! The embedded back end: Herald's pub/sub engine and keyspace inside this process.
//!
//! Publishing calls [`Engine::publish`] directly; stored notifications use database 0 of
//! a [`Store`]. Store-and-publish runs with the keyspace lock held, so no other writer
//! sees the list changed without the message published; element updates locate and
//! replace the element under that same lock, which makes them atomic without WATCH.
//! Nothing here awaits while holding a lock (the engine and store have no `.await`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use herald_engine::{ClientId, Engine, Glob, OutputLimits};
use herald_store::lists::{self, End};
use herald_store::Store;

use crate::error::Error;
use crate::transport::{ElementUpdate, Scope};

/// The database notifications are kept in (what a remote client uses without SELECT).
const DATABASE: usize = 0;

/// The engine and keyspace of an embedded [`crate::Herald`].
#[derive(Debug)]
pub(crate) struct Embedded {
    pub(crate) engine: Arc<Engine>,
    pub(crate) store: Arc<Store>,
    /// Output limits of the subscribers' outboxes (Redis's pubsub defaults).
    pub(crate) limits: Arc<OutputLimits>,
    next_client: AtomicU64,
}

fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl Embedded {
    pub(crate) fn new(engine: Arc<Engine>, store: Arc<Store>) -> Self {
        Embedded {
            engine,
            store,
            limits: Arc::new(OutputLimits::default()),
            next_client: AtomicU64::new(1),
        }
    }

    /// A fresh identity for a subscriber's outbox.
    pub(crate) fn next_client_id(&self) -> ClientId {
        ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn publish(&self, scope: Scope, channel: &str, payload: Bytes) -> usize {
        self.engine.publish(
            scope.engine(),
            Bytes::copy_from_slice(channel.as_bytes()),
            payload,
        )
    }

    pub(crate) fn subscriber_count(&self, channel: &str) -> usize {
        self.engine
            .subscriber_count(herald_engine::Scope::Classic, channel.as_bytes())
    }

    pub(crate) fn active_channels(&self, pattern: Option<&str>) -> Vec<String> {
        let glob = pattern.map(|pattern| Glob::new(pattern.as_bytes()));
        self.engine
            .channels(herald_engine::Scope::Classic, glob.as_ref())
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect()
    }

    pub(crate) fn pattern_count(&self) -> usize {
        self.engine.pattern_count()
    }

    pub(crate) fn push_capped_and_publish(
        &self,
        key: &str,
        element: Bytes,
        cap: usize,
        channel: &str,
    ) -> Result<usize, Error> {
        let key = Bytes::copy_from_slice(key.as_bytes());
        self.store.with(|keyspace| {
            let db = keyspace.db(DATABASE)?;
            let now = now_ms();
            lists::push(
                db,
                &key,
                std::slice::from_ref(&element),
                End::Left,
                false,
                now,
            )?;
            lists::trim(db, &key, 0, cap as i64 - 1, now)?;
            Ok(self.publish(Scope::Classic, channel, element))
        })
    }

    pub(crate) fn list_range(&self, key: &str, start: i64, stop: i64) -> Result<Vec<Bytes>, Error> {
        self.store.with(|keyspace| {
            let db = keyspace.db(DATABASE)?;
            Ok(lists::range(db, key.as_bytes(), start, stop, now_ms())?)
        })
    }

    pub(crate) fn update_list_element(
        &self,
        key: &str,
        update: &ElementUpdate<'_>,
    ) -> Result<bool, Error> {
        self.store.with(|keyspace| {
            let db = keyspace.db(DATABASE)?;
            let now = now_ms();
            let items = lists::range(db, key.as_bytes(), 0, -1, now)?;
            let found = items
                .iter()
                .enumerate()
                .find_map(|(index, item)| update(item).map(|new| (index, new)));
            let Some((index, replacement)) = found else {
                return Ok(false);
            };
            lists::set(db, key.as_bytes(), index as i64, &replacement, now)?;
            Ok(true)
        })
    }
}
