//! The HTTP gateway end to end: a real `herald server` process (RESP and HTTP on ephemeral
//! ports), driven by independent clients: tokio-tungstenite for WebSocket, hyper for SSE
//! and the HTTP API, the `redis` crate for RESP.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod dashboard;
mod flow;
mod limits;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use common::{HERALD, WAIT};
pub const SECRET: &str = "gateway-test-secret";

/// A `herald server` with RESP and HTTP on ephemeral ports, killed on drop.
pub struct Herald {
    pub running: common::Running,
    pub resp: String,
    pub http: String,
}

pub fn start(args: &[&str]) -> Herald {
    let mut all = vec!["--bind", "127.0.0.1", "--port", "0", "--http-port", "0"];
    all.extend_from_slice(args);
    let (running, lines) = common::start_until(all, &[common::READY, "gateway serving"]);
    let http = common::value_after(&lines[1], "http_addr=").expect("http_addr in the gateway line");
    Herald {
        resp: running.addr.clone(),
        http,
        running,
    }
}

/// A token from `herald token` (the CLI helper under test too).
pub fn token(args: &[&str]) -> String {
    let output = Command::new(HERALD)
        .arg("token")
        .args(args)
        .env_remove("HERALD_GATEWAY_JWT_SECRET")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An HS256 token for user `sub` signed with [`SECRET`].
pub fn user_token(sub: &str, extra: &[&str]) -> String {
    let mut args = vec!["--sub", sub, "--secret", SECRET];
    args.extend_from_slice(extra);
    token(&args)
}

pub async fn redis(addr: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

pub async fn resp_publish(addr: &str, channel: &str, payload: &[u8]) -> i64 {
    let mut conn = redis(addr).await;
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to /ws; `Err` carries the HTTP status and body of a refused upgrade.
pub async fn ws_connect(http: &str, query: &str, bearer: Option<&str>) -> Result<Ws, (u16, Value)> {
    let mut request = format!("ws://{http}/ws{query}")
        .into_client_request()
        .unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("ws connect timed out")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(err) => panic!("ws connect failed: {err}"),
    }
}

pub async fn ws_open(http: &str, token: Option<&str>) -> Ws {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    ws_connect(http, &query, None).await.expect("upgrade")
}

pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next text frame as JSON.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time")
            .expect("stream ended")
            .expect("ws error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Sends a request and returns its reply (the next frame).
pub async fn request(ws: &mut Ws, frame: Value) -> Value {
    send(ws, frame).await;
    recv(ws).await
}

/// The close code the server ends the stream with (None if it just drops).
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// One HTTP/1.1 request; the response status, content type and body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> (u16, String, Bytes) {
    let response = send_http(addr, method, path, bearer, body).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    (status, content_type, body)
}

pub async fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let (status, content_type, body) = http(addr, method, path, bearer, body).await;
    assert!(
        content_type.starts_with("application/json"),
        "{status} {content_type}: {body:?}"
    );
    (status, serde_json::from_slice(&body).unwrap())
}

pub async fn send_http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> hyper::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("response in time")
        .unwrap()
}

/// An open SSE stream.
#[derive(Debug)]
pub struct Sse {
    body: Incoming,
    buffer: String,
}

/// Opens `GET /sse{query}`; `Err` carries a refusal's status and JSON body.
pub async fn sse(addr: &str, query: &str) -> Result<Sse, (u16, Value)> {
    let response = send_http(addr, "GET", &format!("/sse{query}"), None, b"").await;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        return Err((status, serde_json::from_slice(&body).unwrap()));
    }
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "text/event-stream");
    let mut stream = Sse {
        body: response.into_body(),
        buffer: String::new(),
    };
    let (event, data) = stream.event().await;
    assert_eq!(event, "herald.subscribed");
    assert_eq!(data["type"], "subscribed");
    Ok(stream)
}

impl Sse {
    /// The next raw block (event or comment), without the blank line.
    pub async fn block(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return block;
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("no SSE data in time")
                .expect("SSE stream ended")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                // SSE ends lines with CR LF, LF or CR alike.
                let text = std::str::from_utf8(&data).unwrap();
                self.buffer
                    .push_str(&text.replace("\r\n", "\n").replace('\r', "\n"));
            }
        }
    }

    /// The next event (comments skipped): its name and JSON data.
    pub async fn event(&mut self) -> (String, Value) {
        loop {
            let block = self.block().await;
            let mut event = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(text) = line.strip_prefix("data: ") {
                    data.push(text);
                }
            }
            if !data.is_empty() {
                return (event, serde_json::from_str(&data.join("\n")).unwrap());
            }
        }
    }
}

/// Polls `check` until it returns true (bounded by [`WAIT`]).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample in /metrics text (`name{labels}` exactly as rendered).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

pub async fn metrics(http_addr: &str) -> String {
    let (status, content_type, body) = http(http_addr, "GET", "/metrics", None, b"").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    String::from_utf8(body.to_vec()).unwrap()
}
