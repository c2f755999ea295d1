//! Large fan-outs: one PUBLISH at a time to hundreds of subscribers (the path `herald
//! bench connections` measures with 10 000). Every subscriber must get every message
//! exactly once and in order, within a bounded time, and the server must count them.
//! Sized for CI: 400 subscribers are 800 sockets in this process, under the usual limit
//! of 1024 descriptors, and well above the fan-out the publishing connection writes
//! itself.

mod common;

use std::time::Duration;

use common::{message, TestServer};

const SUBSCRIBERS: usize = 400;
const MESSAGES: usize = 20;
/// Bound for the whole exchange once everyone is subscribed.
const DEADLINE: Duration = Duration::from_secs(30);

fn payload(seq: usize) -> String {
    format!("message-{seq:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_at_a_time_reaches_every_subscriber_exactly_once_in_order() {
    let server = TestServer::start().await;
    let subs = server.subscribers("wide", SUBSCRIBERS).await;
    let mut publisher = server.client().await;
    publisher.cmd(&[b"PUBSUB", b"NUMSUB", b"wide"]).await;
    publisher
        .expect(format!("*2\r\n$4\r\nwide\r\n:{SUBSCRIBERS}\r\n").as_bytes())
        .await;

    // Every subscriber reads concurrently, as a real one would, and then must hear
    // nothing more: a message written twice would show up here.
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            tokio::spawn(async move {
                for seq in 0..MESSAGES {
                    sub.expect(&message('*', "wide", &payload(seq))).await;
                }
                sub.expect_silence(Duration::from_millis(200)).await;
            })
        })
        .collect();
    let exchange = async {
        // Depth 1, as in the benchmark: each reply before the next PUBLISH.
        for seq in 0..MESSAGES {
            publisher
                .cmd(&[b"PUBLISH", b"wide", payload(seq).as_bytes()])
                .await;
            publisher
                .expect(format!(":{SUBSCRIBERS}\r\n").as_bytes())
                .await;
        }
        for reader in readers {
            reader.await.expect("a subscriber saw the wrong messages");
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the fan-out did not complete in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_leaving_during_a_large_fan_out_do_not_disturb_the_others() {
    // Half the subscribers close their sockets while messages are being fanned out to
    // them; the rest still get everything in order and the server forgets the leavers.
    let server = TestServer::start().await;
    let mut subs = server.subscribers("churn", SUBSCRIBERS / 2).await;
    let leavers = subs.split_off(SUBSCRIBERS / 4);
    let mut publisher = server.client().await;
    let exchange = async {
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                tokio::spawn(async move {
                    for seq in 0..MESSAGES {
                        sub.expect(&message('*', "churn", &payload(seq))).await;
                    }
                    sub
                })
            })
            .collect();
        let mut leavers = Some(leavers);
        for seq in 0..MESSAGES {
            publisher
                .cmd(&[b"PUBLISH", b"churn", payload(seq).as_bytes()])
                .await;
            if seq == MESSAGES / 2 {
                drop(leavers.take());
            }
            let reply = publisher.read_line().await;
            let receivers: usize = reply
                .trim_start_matches(':')
                .trim_end()
                .parse()
                .unwrap_or_else(|_| panic!("PUBLISH replied {reply:?}"));
            assert!(
                (SUBSCRIBERS / 4..=SUBSCRIBERS / 2).contains(&receivers),
                "PUBLISH {seq} reached {receivers}"
            );
        }
        let mut stayed = Vec::new();
        for reader in readers {
            stayed.push(
                reader
                    .await
                    .expect("a remaining subscriber missed messages"),
            );
        }
        // The leavers' sessions end shortly after their sockets close.
        loop {
            publisher.cmd(&[b"PUBSUB", b"NUMSUB", b"churn"]).await;
            publisher.expect(b"*2\r\n$5\r\nchurn\r\n").await;
            let count = publisher.read_line().await;
            if count == format!(":{}\r\n", SUBSCRIBERS / 4) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the fan-out did not complete in time");
}
