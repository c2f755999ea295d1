//! Event bus with patterns: a typed handler for `user.created`, a pattern handler for
//! every `user.*` event, and events emitted by this program; prints what arrives.
//!
//! ```sh
//! cargo run -p herald-client --example event_bus                          # embedded
//! HERALD_URL=redis://127.0.0.1:6379 cargo run -p herald-client --example event_bus
//! ```

use std::time::Duration;

use anyhow::{ensure, Context};
use herald_client::{Event, EventBus, Herald};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct UserCreated {
    id: u64,
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let herald = match std::env::var("HERALD_URL") {
        Ok(url) => Herald::connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?,
        Err(_) => Herald::embedded(),
    };
    let bus = EventBus::new(&herald);
    let (tx, mut received) = mpsc::unbounded_channel::<String>();

    let typed_tx = tx.clone();
    bus.on("user.created", move |event: Event<UserCreated>| {
        let line = format!(
            "[on user.created] user #{} {:?} created at {}",
            event.data.id, event.data.name, event.timestamp
        );
        let _ = typed_tx.send(line);
        async {}
    })
    .await?;
    let pattern_tx = tx.clone();
    bus.on_pattern("user.*", move |event: Event| {
        let line = format!("[on_pattern user.*] {} {}", event.event_type, event.data);
        let _ = pattern_tx.send(line);
        async {}
    })
    .await?;

    let ada = UserCreated {
        id: 1,
        name: "Ada".into(),
    };
    println!(
        "emit user.created -> {} receiver(s)",
        bus.emit("user.created", &ada).await?
    );
    let deleted = serde_json::json!({"id": 2, "reason": "requested"});
    println!(
        "emit user.deleted -> {} receiver(s)",
        bus.emit("user.deleted", &deleted).await?
    );
    println!(
        "emit order.paid -> {} receiver(s)",
        bus.emit("order.paid", &3).await?
    );

    let mut lines = Vec::new();
    for _ in 0..3 {
        let line = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .context("no event within 5 s")?
            .context("handlers gone")?;
        println!("received {line}");
        lines.push(line);
    }
    bus.stop().await;
    ensure!(
        lines
            .iter()
            .filter(|l| l.starts_with("[on user.created] user #1"))
            .count()
            == 1
    );
    ensure!(
        lines
            .iter()
            .filter(|l| l.starts_with("[on_pattern user.*] user."))
            .count()
            == 2
    );
    println!("event_bus: ok");
    Ok(())
}
