//! A client connection's clocks, kept in its socket: a request head must
//! arrive whole within `header_timeout` of its first byte (else the client
//! gets a 408 and the connection closes: slowloris), and a connection with
//! no request in flight closes after `keepalive_timeout`. hyper's own
//! header timer answers nothing and also runs while a kept-alive
//! connection merely waits, so the layer keeps these clocks itself.
//!
//! The socket cannot parse HTTP; it learns from the service when a request
//! has begun (its head was parsed) and when its answer has been sent
//! ([`Activity`]). HTTP/2 connections (seen by their preface) have no head
//! clock: their limits are h2's own, and the idle clock still applies.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

use super::answer::Answer;

/// The HTTP/2 connection preface's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What the service tells the socket: requests begun, and in flight.
#[derive(Debug, Default)]
pub struct Activity {
    begun: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// A request's head has been parsed; it is in flight until the guard
    /// drops (when its answer has been sent).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client socket with the two clocks.
pub struct Clocked {
    inner: TcpStream,
    activity: Arc<Activity>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    /// Armed at a head's first byte: the deadline and the requests begun
    /// then (a new request disarms it).
    head: Option<(Pin<Box<Sleep>>, u64)>,
    idle: Option<Pin<Box<Sleep>>>,
    first_read: bool,
    h2: bool,
}

impl Clocked {
    /// `inner` with the clocks, told of requests by `activity`.
    pub fn new(
        inner: TcpStream,
        activity: Arc<Activity>,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            activity,
            header_timeout,
            keepalive_timeout,
            head: None,
            idle: None,
            first_read: true,
            h2: false,
        }
    }

    /// Writes the 408 answer straight to the socket: hyper is waiting for
    /// a head, so nothing else is being written.
    fn answer_timeout(&self) {
        let text = Answer::RequestTimeout.text();
        let head = format!(
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        // Best effort: a full send buffer means the client is gone anyway.
        let _ = self.inner.try_write(head.as_bytes());
    }
}

impl AsyncRead for Clocked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let begun = this.activity.begun();
        if this.head.as_ref().is_some_and(|(_, at)| *at != begun) {
            // The head it was timing has arrived.
            this.head = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    if this.first_read {
                        this.first_read = false;
                        this.h2 = got.starts_with(H2_PREFACE);
                    }
                    this.idle = None;
                    if !this.h2 && this.head.is_none() && this.activity.in_flight() == 0 {
                        let deadline = Box::pin(tokio::time::sleep(this.header_timeout));
                        this.head = Some((deadline, begun));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some((deadline, _)) = &mut this.head {
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.answer_timeout();
                        // End of input: hyper closes the connection.
                        return Poll::Ready(Ok(()));
                    }
                } else if this.activity.in_flight() == 0 {
                    let timeout = this.keepalive_timeout;
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if idle.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                } else {
                    this.idle = None;
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Clocked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
