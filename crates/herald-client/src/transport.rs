//! The one seam between the public API and the two back ends: [`Backend`] is either a
//! remote server ([`crate::remote`]) or the embedded engine and store
//! ([`crate::embedded`]); every public type calls through it and never matches on the
//! back end itself.

use bytes::Bytes;

use crate::embedded::Embedded;
use crate::error::Error;
use crate::remote::Remote;

/// Which channel namespace a publish goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// PUBLISH.
    Classic,
    /// SPUBLISH.
    Shard,
}

impl Scope {
    pub(crate) fn engine(self) -> herald_engine::Scope {
        match self {
            Scope::Classic => herald_engine::Scope::Classic,
            Scope::Shard => herald_engine::Scope::Shard,
        }
    }
}

/// Given one list element, returns its replacement when it is the element to change.
pub(crate) type ElementUpdate<'a> = dyn Fn(&[u8]) -> Option<Bytes> + Send + Sync + 'a;

#[derive(Debug)]
// One per process or so, always behind an `Arc`: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Remote(Remote),
    Embedded(Embedded),
}

impl Backend {
    pub(crate) async fn publish(
        &self,
        scope: Scope,
        channel: &str,
        payload: Bytes,
    ) -> Result<usize, Error> {
        match self {
            Backend::Remote(remote) => remote.publish(scope, channel, payload).await,
            Backend::Embedded(embedded) => Ok(embedded.publish(scope, channel, payload)),
        }
    }

    pub(crate) async fn subscriber_count(&self, channel: &str) -> Result<usize, Error> {
        match self {
            Backend::Remote(remote) => remote.subscriber_count(channel).await,
            Backend::Embedded(embedded) => Ok(embedded.subscriber_count(channel)),
        }
    }

    pub(crate) async fn active_channels(
        &self,
        pattern: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        match self {
            Backend::Remote(remote) => remote.active_channels(pattern).await,
            Backend::Embedded(embedded) => Ok(embedded.active_channels(pattern)),
        }
    }

    pub(crate) async fn pattern_count(&self) -> Result<usize, Error> {
        match self {
            Backend::Remote(remote) => remote.pattern_count().await,
            Backend::Embedded(embedded) => Ok(embedded.pattern_count()),
        }
    }

    /// Pushes `element` at the head of list `key`, trims the list to `cap` elements and
    /// publishes `element` on `channel`, atomically; returns the receivers.
    pub(crate) async fn push_capped_and_publish(
        &self,
        key: &str,
        element: Bytes,
        cap: usize,
        channel: &str,
    ) -> Result<usize, Error> {
        match self {
            Backend::Remote(remote) => {
                remote
                    .push_capped_and_publish(key, element, cap, channel)
                    .await
            }
            Backend::Embedded(embedded) => {
                embedded.push_capped_and_publish(key, element, cap, channel)
            }
        }
    }

    /// LRANGE key start stop.
    pub(crate) async fn list_range(
        &self,
        key: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<Bytes>, Error> {
        match self {
            Backend::Remote(remote) => remote.list_range(key, start, stop).await,
            Backend::Embedded(embedded) => embedded.list_range(key, start, stop),
        }
    }

    /// Atomically replaces the first element of list `key` that `update` accepts; false
    /// when none does.
    pub(crate) async fn update_list_element(
        &self,
        key: &str,
        update: &ElementUpdate<'_>,
    ) -> Result<bool, Error> {
        match self {
            Backend::Remote(remote) => remote.update_list_element(key, update).await,
            Backend::Embedded(embedded) => embedded.update_list_element(key, update),
        }
    }
}
