//! `rediss://` against a real redis-server speaking TLS only (`--port 0 --tls-port P`),
//! with a CA and certificates made here by rcgen. Herald itself does not speak TLS and
//! embedded mode has no network, so this suite is Redis-only; it is skipped, saying why,
//! only when redis-server is not installed.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{collector, quick_backoff, recv, wait_event, TEST_TIMEOUT, WAIT};
use herald_client::{
    ConnectOptions, ConnectionEvent, Error, Herald, Message, NotificationKind, Subscriber,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and what it signed, in PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca("herald test CA");
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "herald test client");
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// A redis-server child listening for TLS only; killed and its files removed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
    dir: PathBuf,
    pki: Pki,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_server_installed() -> bool {
    match Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) => status.success(),
        Err(_) => false,
    }
}

impl TlsRedis {
    /// None (after saying why) when redis-server is not installed.
    async fn start(client_auth: bool) -> Option<TlsRedis> {
        if !redis_server_installed() {
            println!("SKIPPED: redis-server is not installed (scripts/test installs it)");
            return None;
        }
        let pki = pki();
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("herald-client-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", &pki.ca),
            ("server.pem", &pki.server_cert),
            ("server.key", &pki.server_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(dir.join("server.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.pem"))
            .args(["--tls-auth-clients", if client_auth { "yes" } else { "no" }])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = TlsRedis {
            port,
            child,
            dir,
            pki,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(mut admin) = server.try_admin().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut admin).await;
                if pong.is_ok() {
                    return Some(server);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start on TLS port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// Trusts this server's CA (and presents the client certificate it signed).
    fn options(&self) -> ConnectOptions {
        ConnectOptions::default()
            .tls_root_certificates(self.pki.ca.clone())
            .tls_client_identity(self.pki.client_cert.clone(), self.pki.client_key.clone())
    }

    async fn try_admin(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let certificates = redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: self.pki.client_cert.clone().into_bytes(),
                client_key: self.pki.client_key.clone().into_bytes(),
            }),
            root_cert: Some(self.pki.ca.clone().into_bytes()),
        };
        redis::Client::build_with_tls(self.url(), certificates)?
            .get_multiplexed_async_connection()
            .await
    }

    /// CLIENT KILL TYPE pubsub over TLS.
    async fn kill_subscriber_connections(&self) -> i64 {
        let mut admin = self.try_admin().await.unwrap();
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .unwrap()
    }
}

/// Subscribes a channel, a pattern and a shard channel; each handler reports
/// `kind:channel=payload`.
async fn subscribe_all_kinds(
    subscriber: &Subscriber,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = collector::<String>();
    let handler = |label: &'static str| {
        let tx = Arc::clone(&tx);
        move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move {
                tx.send(format!(
                    "{label}:{}={}",
                    msg.channel,
                    msg.payload_str().unwrap()
                ))
                .unwrap();
            }
        }
    };
    subscriber
        .subscribe("tls:channel", handler("channel"))
        .await
        .unwrap();
    subscriber
        .psubscribe("tls:pattern:*", handler("pattern"))
        .await
        .unwrap();
    subscriber
        .ssubscribe("tls:shard", handler("shard"))
        .await
        .unwrap();
    rx
}

/// Publishes `label` to each subscription; each must count one receiver.
async fn publish_round(herald: &Herald, label: &str) {
    let publisher = herald.publisher();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match publisher.publish("tls:channel", label.to_owned()).await {
            Ok(receivers) => {
                assert_eq!(receivers, 1);
                break;
            }
            Err(err) if err.is_connection_error() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("publish: {err}"),
        }
    }
    assert_eq!(
        publisher
            .publish("tls:pattern:x", label.to_owned())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        publisher
            .spublish("tls:shard", label.to_owned())
            .await
            .unwrap(),
        1
    );
}

async fn expect_round(got: &mut tokio::sync::mpsc::UnboundedReceiver<String>, label: &str) {
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let item = recv(got).await;
        if item.ends_with(&format!("={label}")) {
            seen.push(item);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            format!("channel:tls:channel={label}"),
            format!("pattern:tls:pattern:x={label}"),
            format!("shard:tls:shard={label}"),
        ]
    );
}

async fn round_trip_and_reconnect() {
    let Some(server) = TlsRedis::start(false).await else {
        return;
    };
    let herald = Herald::connect_with(&server.url(), &server.options())
        .await
        .unwrap();
    let subscriber = Subscriber::builder(&herald)
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let mut got = subscribe_all_kinds(&subscriber).await;
    publish_round(&herald, "one").await;
    expect_round(&mut got, "one").await;

    // Notifications: MULTI/EXEC store-and-publish, history, WATCH-based mark_as_read.
    let notifications = herald.notifications();
    let (note_tx, mut notes) = collector::<String>();
    notifications
        .subscribe_user("7", move |note: herald_client::Notification| {
            let note_tx = Arc::clone(&note_tx);
            async move { note_tx.send(note.title).unwrap() }
        })
        .await
        .unwrap();
    let sent = notifications
        .send_to_user("7", NotificationKind::Success, "over tls", "hello", None)
        .await
        .unwrap();
    assert_eq!(recv(&mut notes).await, "over tls");
    assert!(notifications.mark_as_read("7", sent.id).await.unwrap());
    assert_eq!(notifications.unread_count("7").await.unwrap(), 0);
    assert_eq!(notifications.recent("7", 10).await.unwrap().len(), 1);

    let mut note_events = notifications.subscriber().unwrap().events();
    // The server cuts the subscribers' TLS connections; they reconnect over TLS.
    assert!(server.kill_subscriber_connections().await >= 1);
    let event = wait_event(&mut events, "disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected { .. })
    })
    .await;
    println!("after CLIENT KILL over TLS: {event:?}");
    wait_event(&mut events, "resubscribed", |e| {
        *e == ConnectionEvent::Resubscribed {
            channels: 1,
            patterns: 1,
            shard_channels: 1,
        }
    })
    .await;
    publish_round(&herald, "two").await;
    expect_round(&mut got, "two").await;
    // The notification service's own subscriber came back too.
    wait_event(&mut note_events, "resubscribed", |e| {
        matches!(e, ConnectionEvent::Resubscribed { channels: 1, .. })
    })
    .await;
    notifications
        .send_to_user("7", NotificationKind::Info, "after kill", "again", None)
        .await
        .unwrap();
    assert_eq!(recv(&mut notes).await, "after kill");
    notifications.stop().await;
    subscriber.stop().await;

    // `#insecure`: no verification at all, so no CA needed (and none trusted).
    let insecure = Herald::connect(&format!("{}#insecure", server.url()))
        .await
        .unwrap();
    assert_eq!(
        insecure
            .publisher()
            .publish("tls:nobody", "x")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_notifications_and_a_reconnect_over_tls() {
    tokio::time::timeout(TEST_TIMEOUT, round_trip_and_reconnect())
        .await
        .expect("test timed out");
}

fn assert_certificate_refused(err: &Error, what: &str) {
    let text = err.to_string();
    println!("{what}: {text}");
    assert!(err.is_connection_error(), "{what}: {text}");
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "{what}: the error should name the certificate problem: {text}"
    );
}

async fn untrusted_ca() {
    let Some(server) = TlsRedis::start(false).await else {
        return;
    };
    // Another CA than the one that signed the server's certificate.
    let stranger = ca("some other CA").pem();
    let options = ConnectOptions::default().tls_root_certificates(stranger);
    let err = Herald::connect_with(&server.url(), &options)
        .await
        .unwrap_err();
    assert_certificate_refused(&err, "another CA");
    // The system's roots do not know the test CA either.
    let err = Herald::connect(&server.url()).await.unwrap_err();
    assert_certificate_refused(&err, "system roots");
    // A subscriber of a trusting handle keeps working; nothing else is affected.
    let herald = Herald::connect_with(&server.url(), &server.options())
        .await
        .unwrap();
    assert_eq!(herald.publisher().publish("tls:x", "y").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_untrusted_ca_is_refused_clearly() {
    tokio::time::timeout(TEST_TIMEOUT, untrusted_ca())
        .await
        .expect("test timed out");
}

async fn mutual_tls() {
    let Some(server) = TlsRedis::start(true).await else {
        return;
    };
    let herald = Herald::connect_with(&server.url(), &server.options())
        .await
        .unwrap();
    let subscriber = herald.subscriber().unwrap();
    let mut got = subscribe_all_kinds(&subscriber).await;
    publish_round(&herald, "mtls").await;
    expect_round(&mut got, "mtls").await;
    subscriber.stop().await;
    // Without the client certificate the server ends the handshake.
    let anonymous = ConnectOptions::default().tls_root_certificates(server.pki.ca.clone());
    let err = Herald::connect_with(&server.url(), &anonymous)
        .await
        .unwrap_err();
    println!("no client certificate: {err}");
    assert!(err.is_connection_error(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_requiring_client_certificates_accepts_ours() {
    tokio::time::timeout(TEST_TIMEOUT, mutual_tls())
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn tls_options_need_a_tls_url_and_valid_pem() {
    let options = ConnectOptions::default().tls_root_certificates(pki().ca);
    for url in ["redis://127.0.0.1:1/", "redis+cluster://127.0.0.1:1"] {
        let err = Herald::connect_with(url, &options).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl(_)), "{url}: {err}");
        assert!(err.to_string().contains("rediss://"), "{err}");
    }
    let garbage = ConnectOptions::default().tls_root_certificates("not a certificate");
    let err = Herald::connect_with("rediss://127.0.0.1:1/", &garbage)
        .await
        .unwrap_err();
    println!("garbage PEM: {err}");
    assert!(matches!(err, Error::InvalidTls(_)), "{err}");
    let bad_key = ConnectOptions::default().tls_client_identity(pki().client_cert, "no key");
    let err = Herald::connect_with("rediss://127.0.0.1:1/", &bad_key)
        .await
        .unwrap_err();
    println!("bad client key: {err}");
    assert!(matches!(err, Error::InvalidTls(_)), "{err}");
    for url in [
        "rediss://127.0.0.1:1/#whatever",
        "redis+cluster://127.0.0.1:1#insecure",
        "rediss+cluster://127.0.0.1:1#whatever",
    ] {
        let err = Herald::connect(url).await.unwrap_err();
        println!("{url}: {err}");
        assert!(matches!(err, Error::InvalidUrl(_)), "{url}: {err}");
    }
}
