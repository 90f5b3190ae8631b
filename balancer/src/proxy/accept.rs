//! The one accept loop of every TCP-based listener (the byte proxy and the
//! HTTP layer): accept until the listener stops, count and log accept
//! errors and back off when they would recur at once, close what exceeds
//! `max_connections` (counted, logged at a limited rate), and run each
//! admitted connection on its own task, counted by the graceful stop.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tracing::warn;

use crate::{
    config::model::Listener,
    runtime::{ListenerStats, Tracker},
};

/// What the accept loop needs of a listener's service.
pub struct Admission<'a> {
    /// The listener's settings.
    pub listener: &'a Listener,
    /// Its counters.
    pub stats: &'a ListenerStats,
    /// Permits for `max_connections`.
    pub limit: &'a Arc<Semaphore>,
    /// The daemon's open-connection tracker.
    pub tracker: &'a Tracker,
}

/// A listener's service as the accept loop sees it.
pub trait Admitting: Send + Sync + 'static {
    /// Its listener, counters, limit and tracker.
    fn admission(&self) -> Admission<'_>;
}

/// Accepts on `socket` until `shutdown` turns true, running `handle` with
/// each admitted connection, its peer and the service current at its
/// accept. Connections already accepted keep running on their own tasks.
pub async fn serve<S, F, Fut>(
    socket: TcpListener,
    live: Arc<ArcSwap<S>>,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) where
    S: Admitting,
    F: Fn(TcpStream, SocketAddr, Arc<S>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            r = socket.accept() => r,
            _ = shutdown.changed() => break,
        };
        let svc = live.load_full();
        let a = svc.admission();
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                failed(&a, &e).await;
                continue;
            }
        };
        let Ok(permit) = a.limit.clone().try_acquire_owned() else {
            a.stats.rejected_limit.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = a.stats.log.allow() {
                warn!(listener = %a.listener.name, limit = a.listener.max_connections, suppressed,
                    "connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        a.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let guard = a.tracker.open();
        // Boxed: the connection's future is kilobytes, and the runtime
        // would copy it whole into the task and again when it finishes.
        let work = Box::pin(handle(stream, peer, svc));
        tokio::spawn(async move {
            work.await;
            drop(permit);
            drop(guard);
        });
    }
}

async fn failed(a: &Admission<'_>, e: &io::Error) {
    a.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = a.stats.log.allow() {
        warn!(listener = %a.listener.name, error = %e, suppressed, "accept failed");
    }
    backoff(e).await;
}

/// Waits a little after an accept error that would recur at once (out of
/// descriptors or memory), so an accept loop does not spin.
pub async fn backoff(e: &io::Error) {
    if matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
