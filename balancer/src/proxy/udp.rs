//! The UDP proxy for one listener. Each client address gets a session: its
//! own socket connected to one backend, so replies are matched to the client
//! by the kernel, not by us. Replies leave through the listener's socket and
//! so carry the listener's address. Sessions end after `idle_timeout`; at
//! `max_sessions` the longest-idle one is evicted for a new client. A
//! session whose backend loses its flows (down, disabled, removed by a
//! reload) is placed again on the client's next datagram, as the XDP plane
//! places such flows again; a drained backend keeps its sessions.
//!
//! When the listener stops (a shutdown, or an upgrade whose new daemon now
//! reads the socket), its sessions stay until they idle out, counted as
//! open connections, so replies still on their way reach their clients;
//! the daemon's `shutdown_grace` bounds the wait.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use socket2::SockRef;
use tokio::{net::UdpSocket, sync::watch, task::JoinHandle, time::Instant};
use tracing::warn;

use super::connect_udp;
use crate::{
    config::model::Listener,
    runtime::{
        ActiveGuard, BackendStats, ListenerStats, LivePool, PoolState, Tracker,
        attempt::{Asker, Reached},
        control::Passive,
        flow_tuple,
    },
};

const IPPROTO_UDP: u8 = 17;
/// Largest UDP payload over IPv4/IPv6 without jumbograms.
const MAX_DATAGRAM: usize = 65_536;

/// What one UDP listener needs at run time.
pub struct UdpService {
    /// The listener's validated settings.
    pub listener: Listener,
    /// The pool it balances over.
    pub pool: Arc<LivePool>,
    /// Where connect failures go, toward the pool's passive health.
    pub passive: Passive,
    /// Its counters.
    pub stats: Arc<ListenerStats>,
}

/// A listener's service as a reload swaps it: the receive loop loads the
/// current one for each datagram.
pub type LiveUdp = arc_swap::ArcSwap<UdpService>;

struct Session {
    upstream: Arc<UdpSocket>,
    /// The backend it is connected to.
    backend: SocketAddr,
    /// The pool as last seen to keep this session's backend; held (not
    /// just its address) so a new pool is never mistaken for it.
    checked: Arc<PoolState>,
    last_ms: Arc<AtomicU64>,
    stats: Arc<BackendStats>,
    replies: JoinHandle<()>,
    _active: ActiveGuard,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

struct Clock(Instant);

impl Clock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Serves datagrams until `shutdown` turns true, then lets the sessions
/// idle out in the background, registered with `tracker`.
pub async fn serve(
    socket: UdpSocket,
    live: Arc<LiveUdp>,
    mut shutdown: watch::Receiver<bool>,
    tracker: Tracker,
) {
    let socket = Arc::new(socket);
    let clock = Arc::new(Clock(Instant::now()));
    let idle = live.load().listener.idle_timeout;
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    loop {
        let svc = live.load_full();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, client)) => on_datagram(&buf[..n], client, &socket, &svc, &clock, &mut sessions).await,
                Err(e) => log_error(&svc, "receive failed", &e),
            },
            _ = sweep.tick() => {
                let expired = expire(&mut sessions, &clock, idle) as u64;
                svc.stats.sessions_expired.fetch_add(expired, Ordering::Relaxed);
            }
            _ = shutdown.changed() => break,
        }
    }
    if !sessions.is_empty() {
        let open = tracker.open();
        tokio::spawn(async move {
            let _open = open;
            while !sessions.is_empty() {
                sweep.tick().await;
                expire(&mut sessions, &clock, idle);
            }
        });
    }
}

/// Ends the sessions idle for longer than `idle`; returns how many.
fn expire(sessions: &mut HashMap<SocketAddr, Session>, clock: &Clock, idle: Duration) -> usize {
    // Inclusive: in the first `idle` after the start the cutoff is 0, and a
    // session opened in the first millisecond (last seen at 0) is not
    // idle. A strict comparison ended it at the sweep's first tick, which
    // comes at once, and its first answer was lost.
    let cutoff = clock.now_ms().saturating_sub(idle.as_millis() as u64);
    let before = sessions.len();
    sessions.retain(|_, s| s.last_ms.load(Ordering::Relaxed) >= cutoff);
    before - sessions.len()
}

async fn on_datagram(
    data: &[u8],
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    svc: &UdpService,
    clock: &Arc<Clock>,
    sessions: &mut HashMap<SocketAddr, Session>,
) {
    // The common case, a known client under an unchanged pool, costs one
    // lookup and a pointer comparison.
    if let Some(s) = sessions.get_mut(&client) {
        let pool = svc.pool.load();
        if Arc::ptr_eq(&pool, &s.checked) || keeps(&pool, s.backend) {
            if !Arc::ptr_eq(&pool, &s.checked) {
                s.checked = Arc::clone(&pool);
            }
            forward(s, data, svc, clock);
            return;
        }
        sessions.remove(&client);
        svc.stats.sessions_replaced.fetch_add(1, Ordering::Relaxed);
    }
    if sessions.len() >= svc.listener.max_sessions.get() as usize {
        evict_oldest(sessions, svc);
    }
    let Some(session) = open_session(client, socket, svc, clock).await else {
        svc.stats.no_backend.fetch_add(1, Ordering::Relaxed);
        return;
    };
    svc.stats.accepted.fetch_add(1, Ordering::Relaxed);
    forward(&session, data, svc, clock);
    sessions.insert(client, session);
}

/// Whether `backend` is in `pool` and keeps its established flows.
fn keeps(pool: &PoolState, backend: SocketAddr) -> bool {
    pool.backends
        .iter()
        .any(|b| b.address == backend && b.status.keeps_flows())
}

/// Client -> backend for one datagram of a session.
fn forward(s: &Session, data: &[u8], svc: &UdpService, clock: &Clock) {
    s.last_ms.store(clock.now_ms(), Ordering::Relaxed);
    // Never wait on one backend's send buffer while other clients queue up:
    // a full buffer drops this datagram, as the network would. The send goes
    // straight to the non-blocking socket: tokio's `try_send` would refuse
    // until the reactor has seen the new socket become writable, losing a
    // session's first datagram.
    match SockRef::from(s.upstream.as_ref()).send(data) {
        Ok(n) => {
            s.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(e) => log_error(svc, "send to backend failed", &e),
    }
}

fn evict_oldest(sessions: &mut HashMap<SocketAddr, Session>, svc: &UdpService) {
    let oldest = sessions
        .iter()
        .min_by_key(|(_, s)| s.last_ms.load(Ordering::Relaxed))
        .map(|(a, _)| *a);
    if let Some(addr) = oldest {
        sessions.remove(&addr);
        svc.stats.sessions_evicted.fetch_add(1, Ordering::Relaxed);
    }
}

async fn open_session(
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    svc: &UdpService,
    clock: &Arc<Clock>,
) -> Option<Session> {
    let local = socket.local_addr().unwrap_or(svc.listener.address);
    let flow = flow_tuple(client, local, IPPROTO_UDP);
    let pool = svc.pool.load_full();
    let asker = Asker {
        listener: &svc.listener.name,
        attempts: svc.listener.connect_attempts.get() as usize,
        passive: &svc.passive,
    };
    let Reached {
        conn: upstream,
        stats,
        ..
    } = pool.attempt(&flow, &asker, connect_udp).await.ok()?;
    let backend = upstream.peer_addr().ok()?;
    let upstream = Arc::new(upstream);
    let last_ms = Arc::new(AtomicU64::new(clock.now_ms()));
    let replies = tokio::spawn(relay_replies(
        upstream.clone(),
        socket.clone(),
        client,
        last_ms.clone(),
        clock.clone(),
        stats.clone(),
    ));
    Some(Session {
        upstream,
        backend,
        checked: pool,
        last_ms,
        _active: stats.open(),
        stats,
        replies,
    })
}

/// Backend -> client for one session. The receive buffer exists only while
/// a datagram is being handled, so an idle session holds no buffer.
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    last_ms: Arc<AtomicU64>,
    clock: Arc<Clock>,
    stats: Arc<BackendStats>,
) {
    loop {
        if upstream.readable().await.is_err() {
            return;
        }
        // Uninitialised capacity: zeroing 64 KiB per answer cost more than
        // the answer's own system calls.
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        match upstream.try_recv_buf(&mut buf) {
            Ok(n) => {
                if socket.send_to(&buf[..n], client).await.is_ok() {
                    stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    last_ms.store(clock.now_ms(), Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // ICMP port unreachable from the backend surfaces here; the
            // session stays so a restarted backend is reached again.
            Err(_) => {
                stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn log_error(svc: &UdpService, what: &str, e: &io::Error) {
    if let Some(suppressed) = svc.stats.log.allow() {
        warn!(listener = %svc.listener.name, error = %e, suppressed, "{what}");
    }
}
