//! Notifications with history and mark-as-read: a live handler for one user and for
//! broadcasts, three notifications sent, the history listed newest first, one marked as
//! read, and the unread count before and after.
//!
//! ```sh
//! cargo run -p herald-client --example notifications                      # embedded
//! HERALD_URL=redis://127.0.0.1:6379 cargo run -p herald-client --example notifications
//! ```

use std::time::Duration;

use anyhow::{ensure, Context};
use herald_client::{Herald, Notification, NotificationKind, NotificationService};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let herald = match std::env::var("HERALD_URL") {
        Ok(url) => Herald::connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?,
        Err(_) => Herald::embedded(),
    };
    let notifications = NotificationService::new(&herald);
    // A fresh user each run, so a shared server's history does not change the output.
    let user = format!("alice-{}", uuid::Uuid::new_v4().simple());
    let (tx, mut received) = mpsc::unbounded_channel::<Notification>();

    let user_tx = tx.clone();
    notifications
        .subscribe_user(&user, move |notification: Notification| {
            let _ = user_tx.send(notification);
            async {}
        })
        .await?;
    let broadcast_tx = tx.clone();
    notifications
        .subscribe_broadcast(move |notification: Notification| {
            let _ = broadcast_tx.send(notification);
            async {}
        })
        .await?;

    let welcome = notifications
        .send_to_user(
            &user,
            NotificationKind::Info,
            "Welcome",
            "Glad you are here",
            None,
        )
        .await?;
    notifications
        .send_to_user(
            &user,
            NotificationKind::Warning,
            "Storage",
            "You have used 90% of your quota",
            Some(serde_json::json!({"used_percent": 90})),
        )
        .await?;
    notifications
        .send_to_user(
            &user,
            NotificationKind::Success,
            "Backup",
            "Backup finished",
            None,
        )
        .await?;
    notifications
        .broadcast(
            NotificationKind::Info,
            "Maintenance",
            "Tonight at 22:00 UTC",
            None,
        )
        .await?;

    for _ in 0..4 {
        let notification = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .context("no notification within 5 s")?
            .context("handlers gone")?;
        let to = notification.user_id.as_deref().unwrap_or("everyone");
        println!(
            "received for {to}: [{:?}] {}: {}",
            notification.kind, notification.title, notification.message
        );
    }

    let unread_before = notifications.unread_count(&user).await?;
    println!("unread: {unread_before}");
    println!("history, newest first:");
    for notification in notifications.recent(&user, 10).await? {
        println!(
            "  {} {} read={}",
            notification.timestamp, notification.title, notification.read
        );
    }
    let marked = notifications.mark_as_read(&user, welcome.id).await?;
    println!("mark_as_read(Welcome) -> {marked}");
    let history = notifications.recent(&user, 10).await?;
    for notification in &history {
        println!(
            "  {} {} read={}",
            notification.timestamp, notification.title, notification.read
        );
    }
    let unread_after = notifications.unread_count(&user).await?;
    println!("unread: {unread_after}");
    notifications.stop().await;

    let titles: Vec<&str> = history.iter().map(|n| n.title.as_str()).collect();
    ensure!(
        titles == ["Backup", "Storage", "Welcome"],
        "history order: {titles:?}"
    );
    ensure!(
        marked && history[2].read && !history[0].read,
        "mark_as_read"
    );
    ensure!((unread_before, unread_after) == (3, 2), "unread counts");
    println!("notifications: ok");
    Ok(())
}
