//! The password of [`crate::ConnectOptions::password_from`], asked for at every
//! connection: applied to the connections `remote` opens itself ([`CurrentPassword::apply`])
//! and handed to the `redis` crate for the ones it reopens on its own (the connection
//! manager, a cluster's node connections) as a credentials provider.
//!
//! It never caches the password and never re-authenticates an open connection: a server
//! keeps a connection authenticated when its password changes, so only the next
//! connection needs the new one.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use redis::RedisResult;

use crate::connect::PasswordSource;

/// The user of connections whose URL names none (Redis's, Valkey's and Herald's).
const DEFAULT_USER: &str = "default";

/// The URL's user with a password read at each connection.
#[derive(Clone)]
pub(crate) struct CurrentPassword {
    username: String,
    source: PasswordSource,
}

impl std::fmt::Debug for CurrentPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentPassword")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl CurrentPassword {
    /// For connections as `username` (the URL's; `None`: `default`).
    pub(crate) fn new(username: Option<&str>, source: PasswordSource) -> Self {
        CurrentPassword {
            username: username.unwrap_or(DEFAULT_USER).to_owned(),
            source,
        }
    }

    /// The credentials to authenticate with now.
    fn now(&self) -> BasicAuth {
        BasicAuth::new(self.username.clone(), (self.source)().unwrap_or_default())
    }

    /// `info` with the user and the password of this moment.
    pub(crate) fn apply(&self, info: redis::ConnectionInfo) -> redis::ConnectionInfo {
        let credentials = self.now();
        let settings = info
            .redis_settings()
            .clone()
            .set_username(credentials.username())
            .set_password(credentials.password());
        info.set_redis_settings(settings)
    }
}

impl StreamingCredentialsProvider for CurrentPassword {
    /// The current credentials, then nothing. The crate authenticates a new connection
    /// with the first item and re-authenticates it with each later one, which a changed
    /// password does not need (see the module docs); the stream stays open because the
    /// crate logs a warning when it ends.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let credentials = self.now();
        Box::pin(
            futures_util::stream::once(async move { Ok(credentials) })
                .chain(futures_util::stream::pending()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use parking_lot::Mutex;

    fn rotating() -> (Arc<Mutex<Option<String>>>, CurrentPassword) {
        let secret = Arc::new(Mutex::new(Some("first".to_owned())));
        let source = Arc::clone(&secret);
        let password = CurrentPassword::new(None, Arc::new(move || source.lock().clone()));
        (secret, password)
    }

    #[tokio::test]
    async fn every_subscription_reads_the_password_of_its_moment() {
        let (secret, password) = rotating();
        let first = password.subscribe().next().await;
        *secret.lock() = Some("second".to_owned());
        let second = password.subscribe().next().await;
        let first = first
            .and_then(Result::ok)
            .map(|auth| auth.password().to_owned());
        let second = second
            .and_then(Result::ok)
            .map(|auth| auth.password().to_owned());
        assert_eq!(first.as_deref(), Some("first"));
        assert_eq!(second.as_deref(), Some("second"));
    }

    #[tokio::test]
    async fn a_subscription_yields_once_and_stays_open() {
        let (_secret, password) = rotating();
        let mut stream = password.subscribe();
        assert!(stream.next().await.is_some());
        let more = tokio::time::timeout(std::time::Duration::from_millis(20), stream.next()).await;
        assert!(more.is_err(), "the stream ended or yielded again: {more:?}");
    }

    #[test]
    fn no_password_is_the_empty_password_of_the_default_user() {
        let password = CurrentPassword::new(None, Arc::new(|| None));
        let info = password.apply(
            redis::IntoConnectionInfo::into_connection_info("redis://:old@127.0.0.1:6379/")
                .expect("a valid URL"),
        );
        assert_eq!(info.redis_settings().username(), Some("default"));
        assert_eq!(info.redis_settings().password(), Some(""));
        let named = CurrentPassword::new(Some("app"), Arc::new(|| Some("new".into())));
        let info = named.apply(info);
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(info.redis_settings().password(), Some("new"));
    }
}
