//! Basic pub/sub: a handler on a channel, a handler on a pattern, and a stream on a shard
//! channel; prints everything it receives and what PUBSUB reports.
//!
//! ```sh
//! cargo run -p herald-client --example basic_pubsub                       # embedded
//! HERALD_URL=redis://127.0.0.1:6379 cargo run -p herald-client --example basic_pubsub
//! ```

use std::time::Duration;

use anyhow::{ensure, Context};
use futures_util::StreamExt;
use herald_client::{Herald, Message};
use tokio::sync::mpsc;

async fn connect() -> anyhow::Result<Herald> {
    Ok(match std::env::var("HERALD_URL") {
        Ok(url) => Herald::connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?,
        Err(_) => Herald::embedded(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let herald = connect().await?;
    println!(
        "back end: {}",
        if herald.is_embedded() {
            "embedded"
        } else {
            "remote"
        }
    );
    let subscriber = herald.subscriber()?;
    let (tx, mut received) = mpsc::unbounded_channel::<String>();

    let channel_tx = tx.clone();
    subscriber
        .subscribe("news", move |msg: Message| {
            let line = format!("[channel news] {}", msg.payload_str().unwrap_or("<binary>"));
            let _ = channel_tx.send(line);
            async {}
        })
        .await?;
    let pattern_tx = tx.clone();
    subscriber
        .psubscribe("news.*", move |msg: Message| {
            let line = format!(
                "[pattern {}] {} on {}",
                msg.pattern().unwrap_or("?"),
                msg.payload_str().unwrap_or("<binary>"),
                msg.channel
            );
            let _ = pattern_tx.send(line);
            async {}
        })
        .await?;
    let mut alerts = subscriber.sstream("alerts").await?;

    let publisher = herald.publisher();
    println!(
        "PUBLISH news -> {} receiver(s)",
        publisher.publish("news", "hello").await?
    );
    println!(
        "PUBLISH news.eu -> {} receiver(s)",
        publisher.publish("news.eu", "bonjour").await?
    );
    println!(
        "SPUBLISH alerts -> {} receiver(s)",
        publisher.spublish("alerts", "disk full").await?
    );

    let mut lines = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .context("no message within 5 s")?
            .context("handlers gone")?;
        println!("received {line}");
        lines.push(line);
    }
    let alert = tokio::time::timeout(Duration::from_secs(5), alerts.next())
        .await
        .context("no alert within 5 s")?
        .context("stream ended")?;
    println!(
        "received [shard {}] {}",
        alert.channel,
        alert.payload_str().unwrap_or("<binary>")
    );

    println!(
        "PUBSUB NUMSUB news = {}",
        publisher.subscriber_count("news").await?
    );
    println!(
        "PUBSUB CHANNELS news* = {:?}",
        publisher.active_channels(Some("news*")).await?
    );
    println!("PUBSUB NUMPAT = {}", publisher.pattern_count().await?);
    subscriber.stop().await;

    lines.sort();
    ensure!(
        lines
            == [
                "[channel news] hello",
                "[pattern news.*] bonjour on news.eu"
            ],
        "unexpected messages: {lines:?}"
    );
    ensure!(alert.payload_str() == Some("disk full"), "unexpected alert");
    println!("basic_pubsub: ok");
    Ok(())
}
