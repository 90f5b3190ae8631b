//! Moves bytes between a client and a backend socket with splice(2) through
//! a pooled pipe: socket -> pipe -> socket without copying into userspace.
//! Both directions run in the connection's one task; a FIN from one side is
//! passed on as a write shutdown while the other direction keeps flowing
//! (half-close), and the connection ends when both directions have.

use std::{
    io,
    os::fd::AsRawFd,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use socket2::SockRef;
use tokio::{
    io::Interest,
    net::TcpStream,
    time::{Instant, sleep_until},
};

use super::pipes::{Lease, PipePool, splice};

/// Which end of a proxied connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client's socket.
    Client,
    /// The backend's socket.
    Backend,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Backend => "backend",
        })
    }
}

/// Why a relay ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A socket operation failed on one side.
    #[error("{side} side failed: {source}")]
    Io {
        /// Failing side.
        side: Side,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// No byte moved in either direction for the idle timeout.
    #[error("idle for {idle:?}")]
    Idle {
        /// The timeout.
        idle: Duration,
        /// Who had spoken by then.
        spoke: Spoke,
    },
}

/// Whether each side of one connection sent anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spoke {
    /// The client sent at least one byte.
    pub client: bool,
    /// The backend sent at least one byte.
    pub backend: bool,
}

impl Spoke {
    /// The client asked and the backend never answered: a failing backend,
    /// as far as the client can tell.
    #[must_use]
    pub const fn unanswered(self) -> bool {
        self.client && !self.backend
    }
}

/// Byte counters the relay adds to.
pub struct Counters<'a> {
    /// Client -> backend.
    pub up: &'a AtomicU64,
    /// Backend -> client.
    pub down: &'a AtomicU64,
}

/// Last time a byte moved, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    /// The client has sent something.
    asked: std::sync::atomic::AtomicBool,
    /// The backend has sent something.
    answered: std::sync::atomic::AtomicBool,
    /// Directions that have seen their source's FIN.
    ended: std::sync::atomic::AtomicU8,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn spoke(&self) -> Spoke {
        Spoke {
            client: self.asked.load(Ordering::Relaxed),
            backend: self.answered.load(Ordering::Relaxed),
        }
    }

    async fn expired(&self, idle: Duration) {
        loop {
            let deadline =
                self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            sleep_until(deadline).await;
        }
    }
}

/// Relays until both directions have ended, one side fails, or nothing moves
/// for `idle`; says who spoke.
pub async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    pipes: &PipePool,
    idle: Duration,
    counters: &Counters<'_>,
) -> Result<Spoke, RelayError> {
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        asked: std::sync::atomic::AtomicBool::new(false),
        answered: std::sync::atomic::AtomicBool::new(false),
        ended: std::sync::atomic::AtomicU8::new(0),
    };
    let up = pump(
        client,
        backend,
        Side::Client,
        Side::Backend,
        pipes,
        &activity,
        counters.up,
    );
    let down = pump(
        backend,
        client,
        Side::Backend,
        Side::Client,
        pipes,
        &activity,
        counters.down,
    );
    tokio::select! {
        r = async { tokio::try_join!(up, down) } => r.map(|_| activity.spoke()),
        () = activity.expired(idle) => Err(RelayError::Idle { idle, spoke: activity.spoke() }),
    }
}

/// One direction: `src` -> `dst` until `src` sends FIN, then shut down the
/// write side of `dst`.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    src_side: Side,
    dst_side: Side,
    pipes: &PipePool,
    activity: &Activity,
    bytes: &AtomicU64,
) -> Result<(), RelayError> {
    let err = |side| move |source| RelayError::Io { side, source };
    loop {
        src.readable().await.map_err(err(src_side))?;
        let moved = match pipes.lease() {
            Some(lease) => splice_chunk(src, dst, lease).await,
            None => copy_chunk(src, dst).await,
        };
        match moved {
            Ok(Some(0)) => break,
            Ok(Some(n)) => {
                let seen = if src_side == Side::Backend {
                    &activity.answered
                } else {
                    &activity.asked
                };
                seen.store(true, Ordering::Relaxed);
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
            }
            Ok(None) => {}
            Err((End::Src, e)) => return Err(err(src_side)(e)),
            Err((End::Dst, e)) => return Err(err(dst_side)(e)),
        }
    }
    // FIN from src: pass it on, unless the other direction has ended too:
    // then both sockets are closed at once, and the close sends the FIN
    // (`dst` has nothing unread, it sent its own FIN), one call fewer.
    if activity.ended.fetch_add(1, Ordering::AcqRel) == 1 {
        return Ok(());
    }
    // ENOTCONN means dst is already gone, which the other direction will
    // report.
    match SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.raw_os_error() != Some(libc::ENOTCONN) => Err(err(dst_side)(e)),
        _ => Ok(()),
    }
}

/// Which end of one direction an error came from.
enum End {
    Src,
    Dst,
}

/// Moves one chunk `src` -> pipe -> `dst`. `Some(0)` is EOF, `None` a
/// spurious wake-up with nothing to read.
async fn splice_chunk(
    src: &TcpStream,
    dst: &TcpStream,
    mut lease: Lease<'_>,
) -> Result<Option<usize>, (End, io::Error)> {
    let pipe_in = lease.pipe().write.as_raw_fd();
    let cap = lease.pipe().capacity;
    // A read shorter than the pipe does not prove the socket empty (the
    // pipe may have run out of slots on many small segments), so readiness
    // is cleared only by a splice that fails with `EAGAIN`.
    let n = match src.try_io(Interest::READABLE, || splice(src.as_raw_fd(), pipe_in, cap)) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err((End::Src, e)),
    };
    lease.pending = n;
    let pipe_out = lease.pipe().read.as_raw_fd();
    while lease.pending > 0 {
        dst.writable().await.map_err(|e| (End::Dst, e))?;
        match dst.try_io(Interest::WRITABLE, || {
            splice(pipe_out, dst.as_raw_fd(), lease.pending)
        }) {
            Ok(m) => lease.pending -= m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err((End::Dst, e)),
        }
    }
    Ok(Some(n))
}

/// Fallback when no pipe is free: one chunk through a buffer that exists
/// only for this call, so idle connections still hold none.
async fn copy_chunk(src: &TcpStream, dst: &TcpStream) -> Result<Option<usize>, (End, io::Error)> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = read_some(src, &mut buf).await.map_err(|e| (End::Src, e))?;
    write_all(dst, &buf[..n]).await.map_err(|e| (End::Dst, e))?;
    Ok(Some(n))
}

async fn read_some(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match src.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable().await?,
            r => return r,
        }
    }
}

async fn write_all(dst: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        dst.writable().await?;
        match dst.try_write(buf) {
            Ok(m) => buf = &buf[m..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
