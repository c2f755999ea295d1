//! The auth matrix: no token, expired, wrong signature, forbidden, allowed, own and
//! someone else's notifications (by channel and by pattern), publish rights, key types.

use serde_json::json;

use crate::*;

fn secured() -> Herald {
    start(&["--gateway-jwt-secret", SECRET])
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let herald = secured();
    let expired = {
        // exp in the past: sign claims by hand with the same secret.
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = json!({"sub": "42", "subscribe": ["orders:*"], "exp": 1_000_000_000u64});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let forged = token(&[
        "--sub",
        "42",
        "--subscribe",
        "orders:*",
        "--secret",
        "not-the-secret",
    ]);
    for (token, code) in [
        (None, "token_required"),
        (Some(expired.as_str()), "token_expired"),
        (Some(forged.as_str()), "token_invalid_signature"),
        (Some("not.a.jwt"), "token_invalid"),
    ] {
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        let (status, body) = ws_connect(&herald.http, &query, None)
            .await
            .expect_err("refused");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "ws {token:?}"
        );
        let sep = if query.is_empty() { "?" } else { "&" };
        let (status, body) = sse(&herald.http, &format!("{query}{sep}channel=orders:1"))
            .await
            .expect_err("refused");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "sse {token:?}"
        );
        let (status, body) =
            http_json(&herald.http, "POST", "/api/publish/orders:1", token, b"x").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "http {token:?}"
        );
    }
    let metrics = metrics(&herald.http).await;
    assert!(
        sample(
            &metrics,
            "herald_gateway_auth_failures_total{code=\"token_expired\"}"
        )
        .unwrap()
            >= 3.0
    );
    // The header works as well as the query parameter.
    let good = user_token("42", &["--subscribe", "orders:*"]);
    let mut ws = ws_connect(&herald.http, "", Some(&good))
        .await
        .expect("bearer accepted");
    assert_eq!(
        request(&mut ws, json!({"type": "ping"})).await["type"],
        "pong"
    );
}

#[tokio::test]
async fn grants_decide_what_a_user_reads_and_nobody_reads_another_users_notifications() {
    let herald = secured();
    let alice = user_token("42", &["--subscribe", "orders:*"]);
    let mut ws = ws_open(&herald.http, Some(&alice)).await;
    for (frame, name) in [
        (
            json!({"type": "subscribe", "channels": ["payments:1"]}),
            "payments:1",
        ),
        (
            json!({"type": "subscribe", "channels": ["notifications:user:43"]}),
            "notifications:user:43",
        ),
        (
            json!({"type": "subscribe", "channels": ["orders:1", "notifications:user:43"]}),
            "notifications:user:43",
        ),
        (
            json!({"type": "subscribe", "patterns": ["notifications:*"]}),
            "notifications:*",
        ),
        (
            json!({"type": "subscribe", "patterns": ["notifications:user:*"]}),
            "notifications:user:*",
        ),
        (json!({"type": "subscribe", "patterns": ["*"]}), "*"),
        (
            json!({"type": "subscribe", "patterns": ["order*"]}),
            "order*",
        ),
    ] {
        let reply = request(&mut ws, frame).await;
        assert_eq!(reply["type"], "error");
        assert_eq!(reply["code"], "forbidden");
        assert!(reply["message"].as_str().unwrap().contains(name), "{reply}");
    }
    // Refused requests subscribed to nothing, not even their allowed half.
    let (_, body) = http_json(
        &herald.http,
        "GET",
        "/api/numsub?channel=orders:1",
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(body["channels"][0]["subscribers"], 0);
    let ack = request(
        &mut ws,
        json!({"type": "subscribe",
        "channels": ["orders:1", "notifications:user:42", "notifications:broadcast"],
        "patterns": ["orders:eu:*"]}),
    )
    .await;
    assert_eq!(ack["count"], 4);
    for channel in [
        "payments:1",
        "notifications:user:43",
        "notifications:user:420",
        "orders:1",
        "notifications:user:42",
        "notifications:broadcast",
        "orders:eu:9",
    ] {
        resp_publish(&herald.resp, channel, channel.as_bytes()).await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(recv(&mut ws).await["channel"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        got,
        [
            "orders:1",
            "notifications:user:42",
            "notifications:broadcast",
            "orders:eu:9"
        ]
    );
    // Nothing else was queued: the next frame is the pong.
    assert_eq!(
        request(&mut ws, json!({"type": "ping"})).await["type"],
        "pong"
    );
    // SSE follows the same rules.
    let (status, body) = sse(
        &herald.http,
        &format!("?token={alice}&channel=notifications:user:43"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = sse(
        &herald.http,
        &format!("?token={alice}&pattern=notifications:*"),
    )
    .await
    .unwrap_err();
    assert_eq!(status, 403);
    let mut own = sse(
        &herald.http,
        &format!("?token={alice}&channel=notifications:user:42"),
    )
    .await
    .unwrap();
    resp_publish(&herald.resp, "notifications:user:43", b"not yours").await;
    resp_publish(&herald.resp, "notifications:user:42", b"yours").await;
    assert_eq!(own.event().await.1["data"], "yours");
    // Listings show only what the token may read.
    let bob = user_token("43", &[]);
    let _bob_ws = {
        let mut bob_ws = ws_open(&herald.http, Some(&bob)).await;
        request(
            &mut bob_ws,
            json!({"type": "subscribe", "channels": ["notifications:user:43"]}),
        )
        .await;
        bob_ws
    };
    let (_, body) = http_json(&herald.http, "GET", "/api/channels", Some(&alice), b"").await;
    assert!(
        !body.to_string().contains("notifications:user:43"),
        "{body}"
    );
    let (status, _) = http_json(
        &herald.http,
        "GET",
        "/api/numsub?channel=notifications:user:43",
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(status, 403);
    let admin = user_token("ops", &["--admin"]);
    let (_, body) = http_json(&herald.http, "GET", "/api/channels", Some(&admin), b"").await;
    assert!(body.to_string().contains("notifications:user:43"), "{body}");
}

#[tokio::test]
async fn publishing_needs_a_publish_grant() {
    let herald = secured();
    let reader = user_token("1", &["--subscribe", "chat:*"]);
    let writer = user_token("2", &["--subscribe", "chat:*", "--publish", "chat:*"]);
    let mut reader_ws = ws_open(&herald.http, Some(&reader)).await;
    let reply = request(
        &mut reader_ws,
        json!({"type": "publish", "channel": "chat:1", "data": "x"}),
    )
    .await;
    assert_eq!(reply["code"], "forbidden");
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/publish/chat:1",
        Some(&reader),
        b"x",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    request(
        &mut reader_ws,
        json!({"type": "subscribe", "channels": ["chat:1"]}),
    )
    .await;
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/publish/chat:1",
        Some(&writer),
        b"x",
    )
    .await;
    assert_eq!((status, body), (200, json!({"receivers": 1})));
    let (status, _) = http_json(
        &herald.http,
        "POST",
        "/api/broadcast",
        Some(&writer),
        br#"{"channels": ["chat:2", "news"], "data": 1}"#,
    )
    .await;
    assert_eq!(
        status, 403,
        "all-or-nothing: one forbidden channel refuses the broadcast"
    );
    assert_eq!(recv(&mut reader_ws).await["data"], "x");
    let mut writer_ws = ws_open(&herald.http, Some(&writer)).await;
    let reply = request(
        &mut writer_ws,
        json!({"type": "publish", "channel": "chat:1", "data": "y"}),
    )
    .await;
    assert_eq!(reply["receivers"], 1);
    assert_eq!(recv(&mut reader_ws).await["data"], "y");
}

#[tokio::test]
async fn rs256_and_es256_public_keys() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for kind in ["rsa", "ec"] {
        let public = format!("{fixtures}/{kind}-public.pem");
        let private = format!("{fixtures}/{kind}-private.pem");
        let herald = start(&["--gateway-jwt-public-key", &public]);
        let good = token(&[
            "--sub",
            "9",
            "--subscribe",
            "k:*",
            "--private-key",
            &private,
        ]);
        let mut ws = ws_open(&herald.http, Some(&good)).await;
        assert_eq!(
            request(&mut ws, json!({"type": "subscribe", "channels": ["k:1"]})).await["type"],
            "subscribed"
        );
        // An HS256 token is refused by a public-key server (no algorithm confusion).
        let hs = user_token("9", &["--subscribe", "k:*"]);
        let (status, _) = ws_connect(&herald.http, &format!("?token={hs}"), None)
            .await
            .unwrap_err();
        assert_eq!(status, 401, "{kind}");
    }
}

#[tokio::test]
async fn an_expiring_token_closes_the_websocket_with_4001() {
    let herald = secured();
    let short = user_token("5", &["--subscribe", "x", "--ttl", "2s"]);
    let mut ws = ws_open(&herald.http, Some(&short)).await;
    assert_eq!(close_code(&mut ws).await, Some(4001));
}

#[tokio::test]
async fn an_expiring_token_ends_the_sse_stream_with_token_expired() {
    let herald = secured();
    let short = user_token("5", &["--subscribe", "x", "--ttl", "2s"]);
    let mut stream = sse(&herald.http, &format!("?channel=x&token={short}"))
        .await
        .expect("stream opens");
    assert_eq!(resp_publish(&herald.resp, "x", b"before").await, 1);
    let (event, data) = stream.event().await;
    assert_eq!(
        (event.as_str(), &data["data"]),
        ("x", &serde_json::json!("before"))
    );
    let (event, data) = stream.event().await;
    assert_eq!(event, "herald.close");
    assert_eq!(data["code"], "token_expired");
    // The subscription went with the stream.
    let deadline = std::time::Instant::now() + WAIT;
    while resp_publish(&herald.resp, "x", b"after").await != 0 {
        assert!(std::time::Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
