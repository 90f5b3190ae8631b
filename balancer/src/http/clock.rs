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
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::answer::Answer;

/// The HTTP/2 connection preface's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What the service tells the socket: requests begun, and in flight; and
/// what the connection tells the service: whether it speaks HTTP/2, and
/// whether its listener is stopping.
#[derive(Debug, Default)]
pub struct Activity {
    begun: AtomicU64,
    in_flight: AtomicUsize,
    h2: AtomicBool,
    stopping: AtomicBool,
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

    /// Whether the connection speaks HTTP/2 (by its preface).
    pub fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// The listener is stopping: answers from now on close HTTP/1 connections.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether [`Self::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// How many requests have begun so far, to compare with later.
    pub fn mark(&self) -> u64 {
        self.begun()
    }

    /// Whether a request is in flight, or one began after `mark`.
    pub fn busy_since(&self, mark: u64) -> bool {
        self.in_flight() > 0 || self.begun() > mark
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

/// A client stream (a socket, or TLS over one) with the two clocks.
///
/// Both clocks share one timer, moved lazily: a request moves a deadline
/// (a plain `Instant`), and the timer is only set again when it fires
/// before the deadline it stands for, or when a deadline comes earlier
/// than the one it is set to. Busy keep-alive connections thus touch the
/// runtime's timer wheel about once per header timeout, not twice per
/// request.
pub struct Clocked<T> {
    inner: T,
    activity: Arc<Activity>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    /// The head's deadline, from its first byte, and the requests begun
    /// then (a new request disarms it).
    head: Option<(Instant, u64)>,
    /// When the connection closes if nothing comes.
    idle: Option<Instant>,
    /// Set to the earliest deadline it has been asked for since it last
    /// fired (its own `deadline()` says which).
    timer: Pin<Box<Sleep>>,
    first_read: bool,
    h2: bool,
}

/// Which clock ran out.
enum Due {
    Head,
    Idle,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Clocked<T> {
    /// `inner` with the clocks, told of requests by `activity`.
    pub fn new(
        inner: T,
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
            // Not registered with the runtime until first polled; a
            // deadline later than this one is reached by firing once early.
            timer: Box::pin(tokio::time::sleep(keepalive_timeout)),
            first_read: true,
            h2: false,
        }
    }

    /// Writes the 408 answer straight to the stream: hyper is waiting for
    /// a head, so nothing else is being written.
    fn answer_timeout(&mut self, cx: &mut Context<'_>) {
        let text = Answer::RequestTimeout.text();
        let head = format!(
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        // Best effort: a full send buffer means the client is gone anyway.
        // (Under TLS the write is encrypted into the session's buffer and
        // the flush sends it.)
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(_)) = inner.as_mut().poll_write(cx, head.as_bytes()) {
            let _ = inner.poll_flush(cx);
        }
    }

    /// The clock that runs while the socket waits for input, and its
    /// deadline; `None` while a request is in flight.
    fn running(&mut self) -> Option<(Due, Instant)> {
        if let Some((at, _)) = self.head {
            return Some((Due::Head, at));
        }
        if self.activity.in_flight() > 0 {
            self.idle = None;
            return None;
        }
        let keepalive = self.keepalive_timeout;
        let at = *self.idle.get_or_insert_with(|| Instant::now() + keepalive);
        Some((Due::Idle, at))
    }

    /// Whether `deadline` has passed; otherwise the timer will wake the
    /// task by then.
    fn expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return true;
            }
            // Fired for an earlier deadline that has since moved.
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Clocked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let begun = this.activity.begun();
        if this.head.is_some_and(|(_, at)| at != begun) {
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
                        this.activity.h2.store(this.h2, Ordering::Relaxed);
                    }
                    this.idle = None;
                    if !this.h2 && this.head.is_none() && this.activity.in_flight() == 0 {
                        this.head = Some((Instant::now() + this.header_timeout, begun));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((due, deadline)) = this.running() else {
                    return Poll::Pending;
                };
                if !this.expired(cx, deadline) {
                    return Poll::Pending;
                }
                if matches!(due, Due::Head) {
                    this.answer_timeout(cx);
                }
                // End of input: hyper closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Clocked<T> {
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
