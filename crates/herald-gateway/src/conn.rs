//! The gateway's HTTP connections, each with a [`Cut`] that ends it from outside.
//!
//! hyper writes a streaming response (SSE) only while the socket takes bytes: a client
//! that stops reading leaves its connection parked in a pending write, and hyper never
//! polls the response body again, so neither the slow-consumer close nor a shutdown
//! reaches it (a graceful shutdown then waits for it for ever). Every accepted stream is
//! therefore wrapped in a [`Connection`] whose reads and writes fail once its [`Cut`] is
//! made, and the cut wakes the task parked in them: hyper sees a broken connection and
//! drops it with its response. Handlers find the cut of their connection as
//! `ConnectInfo<ConnectionCut>`.
//!
//! [`Connections`] holds every open connection's cut: at shutdown, after a grace, the
//! gateway cuts all that are still open (`Gateway::run`); a slow SSE consumer's session
//! cuts its own at once (`hub.rs`). This module owns the wrapping and that list; it
//! never reads or writes anything itself.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Ends one connection: its reads and writes fail from the moment it is made.
#[derive(Debug, Default)]
pub struct Cut {
    made: AtomicBool,
    /// The task last parked in a read or write of the connection.
    parked: AtomicWaker,
}

impl Cut {
    /// Cuts the connection and wakes whoever waits on it. Idempotent.
    pub fn make(&self) {
        self.made.store(true, Ordering::Release);
        self.parked.wake();
    }

    /// Whether [`Cut::make`] was called.
    pub fn is_made(&self) -> bool {
        self.made.load(Ordering::Acquire)
    }

    /// `Err` once the connection is cut.
    fn check(&self) -> io::Result<()> {
        if self.is_made() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the gateway",
            ));
        }
        Ok(())
    }

    /// Passes `poll` (a read or write of the stream) through unless the connection is
    /// cut. Only a pending poll registers its task, so a connection that is not waiting
    /// (every WebSocket write that the socket takes) pays one load; the check after the
    /// registration catches a cut made meanwhile.
    fn guard<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Err(err) = self.check() {
            return Poll::Ready(Err(err));
        }
        match poll(cx) {
            Poll::Pending => {
                self.parked.register(cx.waker());
                match self.check() {
                    Ok(()) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(err)),
                }
            }
            ready => ready,
        }
    }
}

/// An accepted TCP stream with its [`Cut`].
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    cut: Arc<Cut>,
}

impl Connection {
    /// The connection's cut.
    pub fn cut(&self) -> &Arc<Cut> {
        &self.cut
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.cut.guard(cx, |cx| Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.cut
            .guard(cx, |cx| Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.cut
            .guard(cx, |cx| Pin::new(stream).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.cut.guard(cx, |cx| Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The cuts of every open connection, to end them all (the end of a shutdown's grace).
#[derive(Debug, Default)]
pub struct Connections {
    /// Dropped connections leave dead entries, swept when the vector is full, so it
    /// holds at most about twice the open connections.
    open: Mutex<Vec<Weak<Cut>>>,
}

impl Connections {
    fn add(&self, cut: &Arc<Cut>) {
        let mut open = self.open.lock();
        if open.len() == open.capacity() {
            open.retain(|cut| cut.strong_count() > 0);
        }
        open.push(Arc::downgrade(cut));
    }

    /// Cuts every connection still open.
    pub fn cut_all(&self) {
        let open = std::mem::take(&mut *self.open.lock());
        for cut in open.iter().filter_map(Weak::upgrade) {
            cut.make();
        }
    }
}

/// The gateway's listener: axum's TCP accept loop (and its handling of accept errors),
/// each stream wrapped in a [`Connection`] and its cut kept in [`Connections`].
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    connections: Arc<Connections>,
}

impl Listener {
    /// Accepts on `tcp`, recording every connection in `connections`.
    pub fn new(tcp: TcpListener, connections: Arc<Connections>) -> Self {
        Listener { tcp, connections }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.tcp).await;
        let cut = Arc::default();
        self.connections.add(&cut);
        (Connection { stream, cut }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// What a handler learns of its connection (`ConnectInfo<ConnectionCut>`): the peer and
/// the connection's [`Cut`].
#[derive(Clone, Debug)]
pub struct ConnectionCut {
    /// The client's address.
    pub peer: SocketAddr,
    /// Ends the connection.
    pub cut: Arc<Cut>,
}

impl Connected<IncomingStream<'_, Listener>> for ConnectionCut {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        ConnectionCut {
            peer: *stream.remote_addr(),
            cut: Arc::clone(stream.io().cut()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut listener = Listener::new(listener, Arc::default());
        let (server, _) = axum::serve::Listener::accept(&mut listener).await;
        (server, client)
    }

    #[tokio::test]
    async fn cut_all_cuts_the_open_connections_and_forgets_the_closed() {
        let connections = Arc::new(Connections::default());
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = Listener::new(tcp, Arc::clone(&connections));
        let mut accepted = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..10 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            accepted.push(axum::serve::Listener::accept(&mut listener).await.0);
        }
        let kept = accepted.split_off(5);
        drop(accepted);
        // Sweeps happen as the vector fills: after many short connections it holds about
        // the open ones, not every connection ever accepted.
        for _ in 0..100 {
            let _client = TcpStream::connect(addr).await.unwrap();
            drop(axum::serve::Listener::accept(&mut listener).await.0);
        }
        assert!(
            connections.open.lock().len() < 64,
            "dead connections are kept"
        );
        connections.cut_all();
        assert!(kept.iter().all(|connection| connection.cut().is_made()));
    }

    #[tokio::test]
    async fn reads_and_writes_pass_through_until_cut() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"hi").await.unwrap();
        let mut two = [0; 2];
        client.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"hi");
        server.cut().make();
        assert!(server.write_all(b"more").await.is_err());
        assert!(server.read(&mut two).await.is_err());
    }

    #[tokio::test]
    async fn a_cut_wakes_a_write_parked_on_a_full_socket() {
        let (mut server, _client) = pair().await;
        let cut = Arc::clone(server.cut());
        let writer = tokio::spawn(async move {
            let chunk = vec![0u8; 64 * 1024];
            // The client never reads: this parks once the socket buffers are full.
            loop {
                if let Err(err) = server.write_all(&chunk).await {
                    return err.kind();
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "the socket never filled up");
        cut.make();
        let kind = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
            .await
            .expect("the parked write was not woken by the cut")
            .unwrap();
        assert_eq!(kind, io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_cut_wakes_a_parked_read() {
        let (mut server, _client) = pair().await;
        let cut = Arc::clone(server.cut());
        let reader = tokio::spawn(async move {
            let mut byte = [0; 1];
            server.read(&mut byte).await.map_err(|err| err.kind())
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        cut.make();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the parked read was not woken by the cut")
            .unwrap();
        assert_eq!(read, Err(io::ErrorKind::ConnectionAborted));
    }
}
