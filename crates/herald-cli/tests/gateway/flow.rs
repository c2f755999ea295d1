//! Messages across front-ends, the HTTP API, metrics, health, start-up checks.

use std::process::Command;

use futures_util::StreamExt;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn resp_publish_reaches_websocket_and_sse() {
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    let ack = request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["news"], "id": 7}),
    )
    .await;
    assert_eq!(
        ack,
        json!({"type": "subscribed", "channels": ["news"], "patterns": [], "count": 1, "id": 7})
    );
    let mut events = sse(&herald.http, "?channel=news").await.unwrap();
    assert_eq!(resp_publish(&herald.resp, "news", b"hello").await, 2);
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "message", "channel": "news", "data": "hello", "encoding": "text"})
    );
    let (event, data) = events.event().await;
    assert_eq!(event, "news");
    assert_eq!(data["data"], "hello");
    // JSON payloads are embedded, binary ones base64-encoded.
    resp_publish(&herald.resp, "news", br#"{"price": 10}"#).await;
    resp_publish(&herald.resp, "news", &[0xff, 0x00]).await;
    let json_message = recv(&mut ws).await;
    assert_eq!(json_message["data"], json!({"price": 10}));
    assert_eq!(json_message["encoding"], "json");
    let binary = recv(&mut ws).await;
    assert_eq!(
        (binary["data"].as_str(), binary["encoding"].as_str()),
        (Some("/wA="), Some("base64"))
    );
    assert_eq!(events.event().await.1["encoding"], "json");
    assert_eq!(events.event().await.1["encoding"], "base64");
}

#[tokio::test]
async fn a_resp_pipeline_reaches_websocket_and_sse_whole_and_in_order() {
    // A pipeline of publishes to one channel is queued as one shared run per
    // subscriber; the gateway's writers must unpack it message by message.
    const MESSAGES: usize = 200;
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["burst"], "id": 1}),
    )
    .await;
    let mut events = sse(&herald.http, "?channel=burst").await.unwrap();
    let mut pipe = redis::pipe();
    for seq in 0..MESSAGES {
        pipe.cmd("PUBLISH").arg("burst").arg(seq.to_string());
    }
    let mut conn = redis(&herald.resp).await;
    let receivers: Vec<i64> = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(receivers, vec![2; MESSAGES]);
    for seq in 0..MESSAGES {
        assert_eq!(
            recv(&mut ws).await["data"],
            json!(seq),
            "WebSocket message {seq}"
        );
        assert_eq!(
            events.event().await.1["data"],
            json!(seq),
            "SSE event {seq}"
        );
    }
}

#[tokio::test]
async fn sse_survives_line_breaks_in_channels_and_json_payloads() {
    let herald = start(&[]);
    let mut events = sse(&herald.http, "?pattern=odd*").await.unwrap();
    let mut ws = ws_open(&herald.http, None).await;
    request(&mut ws, json!({"type": "subscribe", "patterns": ["odd*"]})).await;
    assert_eq!(
        resp_publish(&herald.resp, "odd\nchannel", b"{\"a\":\r\n1}").await,
        2
    );
    let (event, data) = events.event().await;
    assert_eq!(
        event, "message",
        "a channel with a line break keeps the default event"
    );
    assert_eq!(data["channel"], "odd\nchannel");
    assert_eq!(data["data"], json!({"a": 1}));
    let frame = recv(&mut ws).await;
    assert_eq!(frame["data"], json!({"a": 1}));
    // The server is still serving both.
    resp_publish(&herald.resp, "odd", b"2").await;
    assert_eq!(events.event().await.1["data"], 2);
    assert_eq!(recv(&mut ws).await["data"], 2);
}

#[tokio::test]
async fn websocket_publish_reaches_resp_subscribers_byte_for_byte() {
    let herald = start(&[]);
    let client = redis::Client::open(format!("redis://{}/", herald.resp)).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("chat").await.unwrap();
    let mut ws = ws_open(&herald.http, None).await;
    let reply = request(
        &mut ws,
        json!({"type": "publish", "channel": "chat", "data": {"text": "hi"}, "id": "a"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type": "published", "receivers": 1, "id": "a"})
    );
    let reply = request(
        &mut ws,
        json!({"type": "publish", "channel": "chat", "data": "/wA=", "encoding": "base64"}),
    )
    .await;
    assert_eq!(reply["receivers"], 1);
    request(
        &mut ws,
        json!({"type": "publish", "channel": "chat", "data": "plain text"}),
    )
    .await;
    let mut messages = pubsub.on_message();
    let mut got = Vec::new();
    for _ in 0..3 {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .unwrap()
            .unwrap();
        got.push(message.get_payload_bytes().to_vec());
    }
    assert_eq!(
        got,
        [
            br#"{"text":"hi"}"#.to_vec(),
            vec![0xff, 0x00],
            b"plain text".to_vec()
        ]
    );
}

#[tokio::test]
async fn patterns_deliver_with_the_pattern_and_count_in_pubsub_numpat() {
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    let ack = request(
        &mut ws,
        json!({"type": "subscribe", "patterns": ["news.*"], "channels": ["news.eu"]}),
    )
    .await;
    assert_eq!(ack["count"], 2);
    let mut events = sse(&herald.http, "?pattern=news.*").await.unwrap();
    let mut conn = redis(&herald.resp).await;
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(numpat, 1, "one distinct pattern across both front-ends");
    assert_eq!(resp_publish(&herald.resp, "news.eu", b"1").await, 3);
    let exact = recv(&mut ws).await;
    assert!(exact.get("pattern").is_none());
    let by_pattern = recv(&mut ws).await;
    assert_eq!(by_pattern["pattern"], "news.*");
    assert_eq!(by_pattern["channel"], "news.eu");
    let (event, data) = events.event().await;
    assert_eq!(
        (event.as_str(), data["pattern"].as_str()),
        ("news.eu", Some("news.*"))
    );
    // Unsubscribing everything stops deliveries; the ack lists what was dropped.
    let ack = request(&mut ws, json!({"type": "unsubscribe"})).await;
    assert_eq!(ack["count"], 0);
    assert_eq!(ack["patterns"], json!(["news.*"]));
    assert_eq!(resp_publish(&herald.resp, "news.eu", b"2").await, 1);
    assert_eq!(
        request(&mut ws, json!({"type": "ping", "id": 1})).await,
        json!({"type": "pong", "id": 1})
    );
}

#[tokio::test]
async fn http_api_publish_broadcast_channels_numsub() {
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["a", "b"]}),
    )
    .await;
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/publish/a",
        None,
        b"raw \xff bytes",
    )
    .await;
    assert_eq!((status, body), (200, json!({"receivers": 1})));
    let message = recv(&mut ws).await;
    assert_eq!(message["encoding"], "base64");
    let (status, body) = http_json(
        &herald.http,
        "POST",
        "/api/broadcast",
        None,
        br#"{"channels": ["a", "b", "c"], "data": {"n": 1}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["receivers"], 2);
    assert_eq!(body["channels"][2], json!({"channel": "c", "receivers": 0}));
    assert_eq!(recv(&mut ws).await["channel"], "a");
    assert_eq!(recv(&mut ws).await["channel"], "b");
    let (_, body) = http_json(&herald.http, "GET", "/api/channels", None, b"").await;
    assert_eq!(body, json!({"channels": ["a", "b"]}));
    let (_, body) = http_json(&herald.http, "GET", "/api/channels?pattern=b*", None, b"").await;
    assert_eq!(body, json!({"channels": ["b"]}));
    let (_, body) = http_json(
        &herald.http,
        "GET",
        "/api/numsub?channel=a&channel=zz",
        None,
        b"",
    )
    .await;
    assert_eq!(
        body,
        json!({"channels": [{"channel": "a", "subscribers": 1}, {"channel": "zz", "subscribers": 0}]})
    );
    let (status, body) =
        http_json(&herald.http, "POST", "/api/broadcast", None, b"{not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_json"))
    );
    let (status, body) = http_json(&herald.http, "GET", "/nowhere", None, b"").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = http_json(&herald.http, "GET", "/api/publish/a", None, b"").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = http_json(&herald.http, "GET", "/healthz", None, b"").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = http_json(&herald.http, "GET", "/readyz", None, b"").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
}

#[tokio::test]
async fn websocket_bad_requests_get_stable_error_codes() {
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    let code = |frame: serde_json::Value| frame["code"].as_str().unwrap().to_owned();
    send(&mut ws, json!(null)).await;
    assert_eq!(code(recv(&mut ws).await), "bad_request");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{oops".into(),
    ))
    .await
    .unwrap();
    assert_eq!(code(recv(&mut ws).await), "bad_json");
    let reply = request(&mut ws, json!({"type": "dance", "id": 3})).await;
    assert_eq!(
        (code(reply.clone()), reply["id"].clone()),
        ("bad_request".to_owned(), json!(3))
    );
    assert_eq!(
        code(request(&mut ws, json!({"type": "subscribe"})).await),
        "bad_request"
    );
    let reply = request(
        &mut ws,
        json!({"type": "publish", "channel": "x", "data": "%", "encoding": "base64"}),
    )
    .await;
    assert_eq!(code(reply), "bad_encoding");
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![1, 2].into(),
    ))
    .await
    .unwrap();
    assert_eq!(code(recv(&mut ws).await), "binary_frame");
    assert_eq!(
        request(&mut ws, json!({"type": "ping"})).await["type"],
        "pong"
    );
}

use futures_util::SinkExt;

#[tokio::test]
async fn metrics_cover_every_transport_and_pass_promtool() {
    let herald = start(&[]);
    let mut ws = ws_open(&herald.http, None).await;
    request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["m"], "patterns": ["m*"]}),
    )
    .await;
    let _events = sse(&herald.http, "?channel=m").await.unwrap();
    let client = redis::Client::open(format!("redis://{}/", herald.resp)).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("m").await.unwrap();
    assert_eq!(resp_publish(&herald.resp, "m", b"x").await, 4);
    recv(&mut ws).await;
    recv(&mut ws).await;
    pubsub.on_message().next().await.unwrap();
    let all_delivered = |text: &str| {
        ["resp", "ws", "sse"].iter().all(|t| {
            let series = format!("herald_pubsub_messages_delivered_total{{transport=\"{t}\"}}");
            sample(text, &series).unwrap_or(0.0) >= 1.0
        })
    };
    eventually("deliveries on every transport", || async {
        all_delivered(&metrics(&herald.http).await)
    })
    .await;
    let text = metrics(&herald.http).await;
    assert_eq!(
        sample(
            &text,
            "herald_pubsub_messages_delivered_total{transport=\"ws\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "herald_pubsub_messages_published_total"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "herald_net_connections{transport=\"ws\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "herald_net_connections{transport=\"sse\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_pubsub_subscriptions{transport=\"ws\",kind=\"pattern\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_pubsub_subscriptions{transport=\"resp\",kind=\"channel\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "herald_pubsub_channels"), Some(1.0));
    assert_eq!(sample(&text, "herald_pubsub_patterns"), Some(1.0));
    assert!(sample(&text, "herald_server_commands_total{command=\"publish\"}").unwrap() >= 1.0);
    assert!(sample(&text, "herald_net_received_bytes_total{transport=\"resp\"}").unwrap() > 0.0);
    assert!(sample(&text, "herald_net_sent_bytes_total{transport=\"ws\"}").unwrap() > 0.0);
    assert!(
        !text.contains("\"m\""),
        "a channel name leaked into a label:\n{text}"
    );
    check_exposition(&text);
}

/// A pipelined run of one command is added to the shared counts once, when another
/// command comes or the batch ends: every call must still be counted, and counted
/// before the client sees its replies.
#[tokio::test]
async fn per_command_counts_include_every_pipelined_call() {
    let herald = start(&[]);
    let mut conn = redis(&herald.resp).await;
    let mut pipe = redis::pipe();
    for _ in 0..5 {
        pipe.cmd("PUBLISH").arg("counted").arg("x");
    }
    pipe.cmd("ECHO").arg("a").cmd("ECHO").arg("b");
    pipe.cmd("PUBLISH").arg("counted").arg("x");
    pipe.cmd("NOSUCHCOMMAND");
    let replies: redis::RedisResult<Vec<redis::Value>> = pipe.query_async(&mut conn).await;
    assert!(replies.is_err(), "the unknown command fails the pipeline");
    let calls = |text: &str, command: &str| {
        sample(
            text,
            &format!("herald_server_commands_total{{command=\"{command}\"}}"),
        )
    };
    let text = metrics(&herald.http).await;
    assert_eq!(calls(&text, "unknown"), Some(1.0));
    assert_eq!(calls(&text, "publish"), Some(6.0));
    assert_eq!(calls(&text, "echo"), Some(2.0));
    // Then a lone command: one more, counted before its reply.
    resp_publish(&herald.resp, "counted", b"x").await;
    assert_eq!(calls(&metrics(&herald.http).await, "publish"), Some(7.0));
}

/// `promtool check metrics` when installed (scripts/test installs it and sets
/// HERALD_REQUIRE_PROMTOOL); otherwise a structural check of the text format.
fn check_exposition(text: &str) {
    let installed = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        installed || std::env::var_os("HERALD_REQUIRE_PROMTOOL").is_none(),
        "HERALD_REQUIRE_PROMTOOL is set but promtool does not run"
    );
    if installed {
        use std::io::Write;
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout.is_empty() && output.stderr.is_empty(),
            "promtool lint: {output:?}"
        );
        return;
    }
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(kind != "counter" || name.ends_with("_total"), "{line}");
            typed.insert(name.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                name.starts_with("herald_") && typed.contains(name),
                "{line}"
            );
        }
    }
}

#[test]
fn http_port_in_use_is_a_clear_startup_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(HERALD)
        .args(["server", "--port", "0", "--http-port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port} for HTTP")),
        "{stderr}"
    );
    assert!(stderr.contains("--no-http"), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the cause once: {stderr}"
    );
}

#[test]
fn anonymous_gateway_on_a_public_address_is_refused() {
    let output = Command::new(HERALD)
        .args([
            "server",
            "--port",
            "0",
            "--http-bind",
            "0.0.0.0",
            "--http-port",
            "0",
        ])
        .env_remove("HERALD_GATEWAY_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--gateway-allow-anonymous"), "{stderr}");
    for bad in [
        &["--gateway-max-subscriptions", "0"][..],
        &["--gateway-max-message-size", "12xb"],
        &["--gateway-jwt-public-key", "/nonexistent.pem"],
    ] {
        let output = Command::new(HERALD)
            .args(["server", "--port", "0"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {output:?}");
    }
}

#[tokio::test]
async fn no_http_and_config_file_keys() {
    let dir = std::env::temp_dir().join(format!("herald-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    std::fs::write(
        &file,
        format!("port = 0\nhttp-port = 0\ngateway-jwt-secret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let herald = start(&["--config", file.to_str().unwrap()]);
    // The secret from the file is in force.
    let (status, _) = http_json(&herald.http, "GET", "/api/channels", None, b"").await;
    assert_eq!(status, 401);
    drop(herald);
    std::fs::write(&file, "http-prot = 1\n").unwrap();
    let output = Command::new(HERALD)
        .args(["server", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http-prot"));
    std::fs::remove_dir_all(&dir).unwrap();
    // --no-http: only RESP comes up.
    let mut child = Command::new(HERALD)
        .args(["server", "--port", "0", "--no-http"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("ready to accept connections"), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        !rest.iter().any(|line| line.contains("gateway serving")),
        "{rest:?}"
    );
}
