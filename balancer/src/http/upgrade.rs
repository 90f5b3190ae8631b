//! Upgrades (WebSocket and any other `Upgrade:` protocol over HTTP/1.1):
//! the request goes to the backend with its `Connection: upgrade` and
//! `Upgrade` headers, and only when the backend answers 101 are the two
//! connections joined; from then on bytes are copied both ways until one
//! side closes or neither speaks for the listener's idle timeout. The
//! tunnel runs on a task of its own, so a reload leaves it alone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::{HeaderMap, HeaderValue, Request, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tracing::debug;

use crate::runtime::{ActiveGuard, BackendStats, ConnectionGuard};

/// The largest piece copied at once.
const CHUNK: usize = 16 * 1024;

/// The `Upgrade` value of an HTTP/1.1 request that asks for one
/// (`Connection` names `upgrade`). An upgrade to `h2c` is never passed on:
/// it would let a client speak HTTP/2 straight to a backend, past the
/// routes (h2c smuggling).
#[must_use]
pub fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != http::Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(header::UPGRADE)?;
    let h2c = protocol.to_str().map_or(true, |p| {
        p.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c"))
    });
    (asks && !h2c).then(|| protocol.clone())
}

/// Puts the upgrade back into headers that lost their hop-by-hop fields.
pub fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// What a tunnel holds while it runs: its backend's count and the daemon's
/// open-connection count (a graceful stop waits for it).
pub struct Held {
    /// The backend's open-connection count.
    pub active: ActiveGuard,
    /// The daemon's.
    pub tracked: ConnectionGuard,
    /// The backend's counters, for bytes.
    pub stats: Arc<BackendStats>,
}

/// Joins the client's and the backend's upgraded connections once both
/// are ready, and copies until the end.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade, idle: Duration, held: Held) {
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "upgrade failed before the tunnel opened");
                return;
            }
        };
        let (cr, cw) = tokio::io::split(TokioIo::new(client));
        let (br, bw) = tokio::io::split(TokioIo::new(backend));
        let seen = Arc::new(AtomicU64::new(0));
        let up = copy(cr, bw, seen.clone(), held.stats.clone(), true);
        let down = copy(br, cw, seen.clone(), held.stats.clone(), false);
        tokio::select! {
            () = async { tokio::join!(up, down); } => {}
            () = watchdog(&seen, idle) => debug!(?idle, "closing an idle tunnel"),
        }
        drop(held);
    });
}

/// Copies `from` to `to` until the end, counting bytes in `seen` and the
/// backend's counters (`up`: toward the backend).
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seen: Arc<AtomicU64>,
    stats: Arc<BackendStats>,
    up: bool,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.fetch_add(n as u64, Ordering::Relaxed);
        let counter = if up {
            &stats.bytes_in
        } else {
            &stats.bytes_out
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Pass the end on (a half-close), so the other side can finish.
    let _ = to.shutdown().await;
}

/// Returns once `seen` has not moved for `idle`.
async fn watchdog(seen: &AtomicU64, idle: Duration) {
    let step = (idle / 4).max(Duration::from_millis(50));
    let mut last = seen.load(Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        let now = seen.load(Ordering::Relaxed);
        if now == last {
            quiet += step;
            if quiet >= idle {
                return;
            }
        } else {
            last = now;
            quiet = Duration::ZERO;
        }
    }
}
