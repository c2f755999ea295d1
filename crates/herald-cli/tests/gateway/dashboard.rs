//! The dashboard's API, the notification demo's API and the development sign-in, over
//! HTTP against a real server (the browser tests in `tests/browser/` drive the pages).

use serde_json::{json, Value};

use super::*;

fn admin_token() -> String {
    user_token("ops", &["--admin"])
}

#[tokio::test]
async fn the_dashboard_api_is_for_operators_only() {
    let herald = start(&["--gateway-jwt-secret", SECRET]);
    let user = user_token("alice", &["--subscribe", "*"]);
    for path in ["/api/stats", "/api/top-channels", "/api/stats/stream"] {
        let (status, body) = http_json(&herald.http, "GET", path, None, b"").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("token_required")),
            "{path}"
        );
        let (status, body) = http_json(&herald.http, "GET", path, Some(&user), b"").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
        assert!(body["error"]["message"].as_str().unwrap().contains("admin"));
    }
    let (status, stats) =
        http_json(&herald.http, "GET", "/api/stats", Some(&admin_token()), b"").await;
    assert_eq!(status, 200, "{stats}");
    for key in [
        "connections",
        "messages",
        "slow_consumer_disconnects",
        "history",
    ] {
        assert!(stats.get(key).is_some(), "{key} missing: {stats}");
    }
    // whoami answers everyone with a token, and says what they may do.
    let (status, me) = http_json(&herald.http, "GET", "/api/whoami", Some(&user), b"").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"], "alice");
    assert_eq!(me["operator"], false);
    assert_eq!(me["may_publish"], false);
    assert_eq!(me["dev_tokens"], false);
}

#[tokio::test]
async fn anonymous_loopback_mode_serves_the_dashboard_and_the_pages() {
    let herald = start(&[]);
    let (status, me) = http_json(&herald.http, "GET", "/api/whoami", None, b"").await;
    assert_eq!(
        (status, &me["operator"], &me["may_publish"]),
        (200, &json!(true), &json!(true))
    );
    for (path, kind) in [
        ("/", "text/html"),
        ("/demo/notifications", "text/html"),
        ("/assets/dashboard.js", "text/javascript"),
        ("/assets/herald.css", "text/css"),
    ] {
        let response = send_http(&herald.http, "GET", path, None, b"").await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    }
    let (status, body) = http_json(&herald.http, "GET", "/assets/nope.js", None, b"").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn top_channels_follow_redis_subscribers_and_publishers() {
    let herald = start(&[]);
    let client = redis::Client::open(format!("redis://{}/", herald.resp)).unwrap();
    let mut subscribers = Vec::new();
    for channels in [&["hot", "wide"][..], &["wide"], &["wide"]] {
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        for channel in channels {
            pubsub.subscribe(*channel).await.unwrap();
        }
        subscribers.push(pubsub);
    }
    let (_, by_subscribers) = http_json(
        &herald.http,
        "GET",
        "/api/top-channels?by=subscribers&limit=5",
        None,
        b"",
    )
    .await;
    let rows = by_subscribers["channels"].as_array().unwrap();
    assert_eq!(rows[0]["channel"], "wide");
    assert_eq!(rows[0]["subscribers"], 3);
    assert_eq!(rows[1]["channel"], "hot");
    // Looking at the dashboard starts the rate sampler; publish and watch the rate rise.
    let mut conn = redis(&herald.resp).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for _ in 0..50 {
            let _: i64 = redis::cmd("PUBLISH")
                .arg("hot")
                .arg("x")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let (_, by_rate) = http_json(
            &herald.http,
            "GET",
            "/api/top-channels?by=rate&search=o",
            None,
            b"",
        )
        .await;
        let rows = by_rate["channels"].as_array().unwrap();
        assert!(
            rows.iter().all(|row| row["channel"] == "hot"),
            "search 'o' matches only hot: {by_rate}"
        );
        if rows
            .first()
            .and_then(|row| row["rate"].as_f64())
            .unwrap_or(0.0)
            > 10.0
        {
            assert!(rows[0]["published"].as_u64().unwrap() >= 50);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rate never rose: {by_rate}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, stats) = http_json(&herald.http, "GET", "/api/stats", None, b"").await;
    assert_eq!(stats["channels"], 2);
    assert!(stats["messages"]["published_total"].as_u64().unwrap() >= 50);
    assert!(stats["connections"]["resp"].as_u64().unwrap() >= 4);
    for bad in [
        "?by=size",
        "?limit=0",
        "?limit=1000",
        "?limit=x",
        "?colour=red",
    ] {
        let (status, body) = http_json(
            &herald.http,
            "GET",
            &format!("/api/top-channels{bad}"),
            None,
            b"",
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    drop(subscribers);
}

#[tokio::test]
async fn the_stats_stream_sends_an_event_a_second_and_ends_when_the_token_expires() {
    let herald = start(&["--gateway-jwt-secret", SECRET]);
    let token = user_token("ops", &["--admin", "--ttl", "5"]);
    let response = send_http(
        &herald.http,
        "GET",
        &format!("/api/stats/stream?token={token}"),
        None,
        b"",
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = Sse {
        body: response.into_body(),
        buffer: String::new(),
    };
    let (event, first) = stream.event().await;
    assert_eq!(event, "stats");
    assert!(
        first["top_by_rate"].is_array() && first["top_by_subscribers"].is_array(),
        "{first}"
    );
    let (_, second) = stream.event().await;
    assert!(second["time_ms"].as_u64() > first["time_ms"].as_u64());
    // A second viewer gets the same events, built once per tick for both.
    let response = send_http(
        &herald.http,
        "GET",
        &format!("/api/stats/stream?token={token}"),
        None,
        b"",
    )
    .await;
    let mut other = Sse {
        body: response.into_body(),
        buffer: String::new(),
    };
    let _ = other.event().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2 {
        seen.insert(stream.event().await.1["time_ms"].as_u64());
    }
    let mut shared = false;
    for _ in 0..2 {
        shared |= seen.contains(&other.event().await.1["time_ms"].as_u64());
    }
    assert!(shared, "the two streams never got the same tick's event");
    let closing: Value = loop {
        let (event, data) = stream.event().await;
        if event == "herald.close" {
            break data;
        }
        assert_eq!(event, "stats");
    };
    assert_eq!(closing["code"], "token_expired");
}

#[tokio::test]
async fn notifications_through_the_api_are_private_and_marked_read_once() {
    let herald = start(&["--gateway-dev-tokens"]);
    let mint = |body: Value| {
        let http = herald.http.clone();
        async move {
            let (status, minted) = http_json(
                &http,
                "POST",
                "/api/dev/token",
                None,
                body.to_string().as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{minted}");
            minted["token"].as_str().unwrap().to_owned()
        }
    };
    let alice = mint(json!({"user": "alice"})).await;
    let bob = mint(json!({"user": "bob"})).await;
    let send = json!({"user": "alice", "type": "warning", "title": "Quota", "message": "90% used", "data": {"used": 0.9}});
    let (status, sent) = http_json(
        &herald.http,
        "POST",
        "/api/notifications/send",
        Some(&bob),
        send.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["notification"]["id"].as_str().unwrap().to_owned();
    // Stored where every notification-service client looks, newest first.
    let mut conn = redis(&herald.resp).await;
    let stored: Vec<String> = redis::cmd("LRANGE")
        .arg("user:alice:notifications")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let stored: Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(
        (stored["id"].as_str(), &stored["read"]),
        (Some(id.as_str()), &json!(false))
    );

    let (status, list) =
        http_json(&herald.http, "GET", "/api/notifications", Some(&alice), b"").await;
    assert_eq!((status, &list["unread"]), (200, &json!(1)));
    assert_eq!(list["notifications"][0]["data"]["used"], 0.9);
    let (_, theirs) = http_json(&herald.http, "GET", "/api/notifications", Some(&bob), b"").await;
    assert_eq!(
        (
            &theirs["unread"],
            theirs["notifications"].as_array().map(Vec::len)
        ),
        (&json!(0), Some(0))
    );
    let (status, _) = http_json(
        &herald.http,
        "GET",
        "/api/notifications?user=alice",
        Some(&bob),
        b"",
    )
    .await;
    assert_eq!(status, 403);

    let read = format!("/api/notifications/{id}/read");
    let (status, _) = http_json(&herald.http, "POST", &read, Some(&bob), b"").await;
    assert_eq!(status, 404, "bob cannot mark alice's notification");
    let (status, marked) = http_json(&herald.http, "POST", &read, Some(&alice), b"").await;
    assert_eq!((status, &marked["unread"]), (200, &json!(0)));
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/notifications/not-a-uuid/read",
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_id"))
    );

    // A user token may not broadcast; bad bodies are 400 with a reason.
    let broadcast = json!({"title": "All", "message": "hands"}).to_string();
    let (status, _) = http_json(
        &herald.http,
        "POST",
        "/api/notifications/send",
        Some(&alice),
        broadcast.as_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    for bad in [
        &b"{"[..],
        br#"{"user":"alice","title":"","message":"x"}"#,
        br#"{"user":"a b","title":"t","message":"x"}"#,
        br#"{"user":"alice","title":"t","message":"x","colour":1}"#,
        br#"{"user":"alice","type":"loud","title":"t","message":"x"}"#,
    ] {
        let (status, body) = http_json(
            &herald.http,
            "POST",
            "/api/notifications/send",
            Some(&alice),
            bad,
        )
        .await;
        assert_eq!(status, 400, "{}: {body}", String::from_utf8_lossy(bad));
    }
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/dev/token",
        None,
        br#"{"user":"*"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_user"))
    );
}

#[tokio::test]
async fn development_sign_in_is_off_by_default_and_refused_off_loopback() {
    let herald = start(&["--gateway-jwt-secret", SECRET]);
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/dev/token",
        None,
        br#"{"user":"alice"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("dev_tokens_disabled"))
    );
    for args in [
        &[
            "--http-bind",
            "0.0.0.0",
            "--gateway-dev-tokens",
            "--gateway-jwt-secret",
            "x",
        ][..],
        &[
            "--gateway-dev-tokens",
            "--gateway-jwt-public-key",
            "/nonexistent.pem",
        ],
    ] {
        let output = Command::new(HERALD)
            .args(["server", "--port", "0", "--http-port", "0"])
            .args(args)
            .env_remove("HERALD_GATEWAY_JWT_SECRET")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--gateway-dev-tokens"), "{stderr}");
    }
}

/// With the server's stderr closed every log write fails. A failed log write used to
/// panic the request that logged (tracing-subscriber's eprintln! of its own error).
#[tokio::test]
async fn logging_to_a_closed_stderr_does_not_break_requests() {
    let mut herald = start(&["--gateway-dev-tokens"]);
    herald.running.close_log();
    for n in 0..5 {
        let body = json!({ "user": format!("user{n}") }).to_string();
        let (status, _) = http_json(
            &herald.http,
            "POST",
            "/api/dev/token",
            None,
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "mint {n} (each one logs a line)");
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_shows_in_the_backlog() {
    use tokio::io::AsyncWriteExt;
    let herald = start(&[]);
    let mut conn = redis(&herald.resp).await;
    // Room for the backlog to build without the subscriber being cut off.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 256mb 0 0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, stats) = http_json(&herald.http, "GET", "/api/stats", None, b"").await;
    assert_eq!(stats["backlog"], json!([]), "nobody is behind yet");
    let mut stalled = TcpStream::connect(&herald.resp).await.unwrap();
    let local = stalled.local_addr().unwrap().to_string();
    stalled
        .write_all(b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$7\r\nstalled\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nbulk\r\n")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while {
        let count: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("bulk")
            .query_async(&mut conn)
            .await
            .unwrap();
        count[0].1 == 0
    } {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Far more than the socket buffers hold; the subscriber never reads.
    let payload = vec![b'x'; 1 << 20];
    for _ in 0..40 {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg("bulk")
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(receivers, 1);
    }
    let (_, stats) = http_json(&herald.http, "GET", "/api/stats", None, b"").await;
    let row = &stats["backlog"][0];
    assert_eq!(row["transport"], "resp", "{stats}");
    assert_eq!(row["peer"], local.as_str());
    assert_eq!(row["name"], "stalled");
    assert!(row["queued_bytes"].as_u64().unwrap() > 8 << 20, "{row}");
    drop(stalled);
}

#[tokio::test]
async fn an_oversized_notification_body_is_413_message_too_large_like_any_other() {
    let herald = start(&["--gateway-max-message-size", "1kb"]);
    let body = json!({ "user": "alice", "title": "t", "message": "x".repeat(2000) }).to_string();
    let (status, reply) = http_json(
        &herald.http,
        "POST",
        "/api/notifications/send",
        None,
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("message_too_large")),
        "{reply}"
    );
}

/// The notification routes reach the history through a RESP connection to the server
/// itself; after `CONFIG SET requirepass` and the loss of that connection, its reconnection
/// must authenticate with the new password (it used the one the server started with).
#[tokio::test]
async fn notifications_survive_a_password_change_and_a_lost_connection() {
    let herald = start(&["--gateway-dev-tokens", "--requirepass", "before"]);
    let (status, minted) = http_json(
        &herald.http,
        "POST",
        "/api/dev/token",
        None,
        json!({"user": "alice"}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let alice = minted["token"].as_str().unwrap().to_owned();
    let send = |title: &'static str| {
        let http = herald.http.clone();
        let alice = alice.clone();
        async move {
            let body = json!({"user": "alice", "title": title, "message": "m"}).to_string();
            http_json(
                &http,
                "POST",
                "/api/notifications/send",
                Some(&alice),
                body.as_bytes(),
            )
            .await
        }
    };
    let (status, body) = send("first").await;
    assert_eq!(status, 200, "{body}");

    let client = redis::Client::open(format!("redis://:before@{}/", herald.resp)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "after"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        killed >= 1,
        "the gateway's connection was not there to kill"
    );

    // The first send after the loss may fail while the connection is reopened.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = send("second").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no send succeeded after the password change: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored: Vec<String> = redis::cmd("LRANGE")
        .arg(&["user:alice:notifications", "0", "-1"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let (status, list) =
        http_json(&herald.http, "GET", "/api/notifications", Some(&alice), b"").await;
    assert_eq!((status, &list["unread"]), (200, &json!(2)), "{list}");
}
