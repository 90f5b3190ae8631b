//! The TCP proxy for one listener: accept, enforce the connection limit,
//! read a PROXY header from listed peers, pick the pool (by the SNI of the
//! ClientHello when the listener has routes) and a backend, connect with
//! a timeout (a refused or silent backend costs the client nothing while
//! another can be tried), then relay with splice until both sides are
//! done.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use socket2::SockRef;
use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tracing::{debug, warn};

use super::{
    connect_tcp,
    pipes::PipePool,
    sni::{self, SniTarget},
    sockmap::{
        link::{Link, LinkError},
        load::Relay,
    },
    splice::{Counters, RelayError, Side, Spoke},
};
use crate::{
    config::{defaults::DEFAULT_HEADER_TIMEOUT, model::Listener},
    runtime::{
        ListenerStats, LivePool, Tracker,
        attempt::{Asker, Reached},
        control::Passive,
        failure::{Failure, Step},
        flow_tuple,
    },
};

const IPPROTO_TCP: u8 = 6;

/// What one TCP listener needs at run time.
pub struct TcpService {
    /// The listener's validated settings.
    pub listener: Listener,
    /// The pool it balances over (with routes: what no route takes).
    pub pool: Arc<LivePool>,
    /// Where connect failures go, toward the pool's passive health.
    pub passive: Passive,
    /// Routes by the ClientHello's SNI, in file order; empty: the
    /// connection's bytes are not looked at.
    pub routes: Vec<SniTarget>,
    /// Its counters.
    pub stats: Arc<ListenerStats>,
    /// Shared pipe pool.
    pub pipes: Arc<PipePool>,
    /// The sockmap relay when the listener's engine is `sockmap`; `None`:
    /// splice.
    pub relay: Option<Arc<Relay>>,
    /// Open-connection tracker (graceful shutdown waits on it).
    pub tracker: Tracker,
    /// Permits for `max_connections`; a reload that keeps the limit keeps
    /// the semaphore, so connections already open still count.
    pub limit: Arc<Semaphore>,
}

/// A listener's service as a reload swaps it: the accept loop loads the
/// current one for each new connection.
pub type LiveTcp = arc_swap::ArcSwap<TcpService>;

/// Accepts until `shutdown` turns true; connections already accepted keep
/// running on their own tasks.
pub async fn serve(socket: TcpListener, live: Arc<LiveTcp>, shutdown: watch::Receiver<bool>) {
    super::accept::serve(socket, live, shutdown, |client, peer, svc| async move {
        handle(client, peer, &svc).await;
    })
    .await;
}

impl super::accept::Admitting for TcpService {
    fn admission(&self) -> super::accept::Admission<'_> {
        super::accept::Admission {
            listener: &self.listener,
            stats: &self.stats,
            limit: &self.limit,
            tracker: &self.tracker,
        }
    }
}

async fn handle(mut client: TcpStream, peer: SocketAddr, svc: &TcpService) {
    // The listener's own address, unless it is a wildcard and the kernel
    // must say which local address this client reached.
    let local = if svc.listener.address.ip().is_unspecified() {
        client.local_addr().unwrap_or(svc.listener.address)
    } else {
        svc.listener.address
    };
    // A listed peer's header is waited for as long as an HTTP listener
    // waits for a request head by default.
    let Some(peer) = crate::proxy_protocol::expect::client_of(
        &mut client,
        peer,
        &svc.listener.accept_proxy_from,
        DEFAULT_HEADER_TIMEOUT,
        (&svc.listener.name, &svc.stats),
    )
    .await
    else {
        return;
    };
    let Some((routed, hello)) = route(&mut client, peer, svc).await else {
        return;
    };
    let (pool, passive) = routed.map_or((&svc.pool, &svc.passive), |r| (&r.pool, &r.passive));
    let Some((
        Reached {
            conn: mut backend,
            index,
            stats,
            ..
        },
        proxy_protocol,
    )) = connect(peer, local, (pool, passive), svc).await
    else {
        svc.stats.no_backend.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // The client socket inherited its options from the listener.
    tune(&backend);
    let _active = stats.open();
    // The PROXY header and the ClientHello in one write.
    let (opening, hello_len) = opening(proxy_protocol, (peer, local), hello);
    if !opening.is_empty() {
        if let Err(e) = backend.write_all(&opening).await {
            debug!(listener = %svc.listener.name, %peer, error = %e, "cannot send the connection's first bytes");
            passive.report(index, Failure::io(Step::Send, &e));
            return;
        }
        stats
            .bytes_in
            .fetch_add(hello_len as u64, Ordering::Relaxed);
    }
    let counters = Counters {
        up: &stats.bytes_in,
        down: &stats.bytes_out,
    };
    let relayed = tokio::select! {
        r = relay(&client, &backend, svc, &counters) => r,
        () = stats.cut.notified() => {
            debug!(listener = %svc.listener.name, %peer, "closing a connection: its backend's drain timeout passed");
            for s in [&client, &backend] {
                let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            return;
        }
    };
    match relayed {
        // The client asked and the backend closed without a byte: as good
        // as a reset for passive health (HAProxy's "empty response").
        Ok(spoke) if spoke.unanswered() => {
            svc.passive.report(index, Failure::Unanswered);
        }
        Ok(spoke) => debug!(listener = %svc.listener.name, %peer, ?spoke, "connection done"),
        Err(RelayError::Idle { idle, spoke }) => {
            debug!(listener = %svc.listener.name, %peer, ?idle, "closing idle connection");
            // Asked, accepted, and never a byte back: a hung backend.
            if spoke.unanswered() {
                passive.report(index, Failure::Hung);
            }
        }
        Err(e) => {
            debug!(listener = %svc.listener.name, %peer, error = %e, "connection aborted");
            // A backend that resets connections is failing, whatever its
            // health checks say: tell passive health.
            if let RelayError::Io {
                side: Side::Backend,
                source,
            } = &e
                && matches!(
                    source.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                )
            {
                passive.report(index, Failure::Reset);
            }
            // Pass the abort on as a reset to both ends rather than a clean
            // FIN that would look like a complete response.
            for s in [&client, &backend] {
                let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

/// Moves bytes both ways with the listener's engine: the sockmap relay
/// when it has one and the connection could be entered into its maps,
/// splice otherwise.
async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    svc: &TcpService,
    counters: &Counters<'_>,
) -> Result<Spoke, RelayError> {
    if let Some(r) = &svc.relay {
        // Boxed: the default (splice) connection's future stays as small as
        // before, since tokio moves it whole.
        if let Some(done) = Box::pin(in_kernel(r, client, backend, svc, counters)).await {
            return done;
        }
        svc.stats.sockmap_spliced.fetch_add(1, Ordering::Relaxed);
    }
    super::splice::relay(
        client,
        backend,
        &svc.pipes,
        svc.listener.idle_timeout,
        counters,
    )
    .await
}

/// The connection through the sockmap relay; `None` when it could not be
/// entered and is left, untouched, to the splice.
async fn in_kernel(
    relay: &Relay,
    client: &TcpStream,
    backend: &TcpStream,
    svc: &TcpService,
    counters: &Counters<'_>,
) -> Option<Result<Spoke, RelayError>> {
    match Link::new(relay, client, backend).await {
        Ok(link) => {
            svc.stats.sockmap_relayed.fetch_add(1, Ordering::Relaxed);
            let idle = svc.listener.idle_timeout;
            Some(super::sockmap::relay::relay(client, backend, &link, idle, counters).await)
        }
        // A client that has already sent its FIN is no longer
        // `ESTABLISHED`, which socket maps require: nothing is wrong.
        Err(LinkError::Unlinked(e)) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            debug!(listener = %svc.listener.name, error = %e, "connection closing already; splicing it");
            None
        }
        Err(LinkError::Unlinked(e)) => {
            if let Some(suppressed) = svc.stats.log.allow() {
                warn!(listener = %svc.listener.name, error = %e, suppressed,
                    "cannot enter a connection into the sockmap relay; splicing it");
            }
            None
        }
        Err(LinkError::Broken(source)) => Some(Err(RelayError::Io {
            side: Side::Client,
            source,
        })),
    }
}

/// The SNI route of the connection (`None`: the listener's pool) and its
/// ClientHello, read when the listener has routes; `None` when it sent
/// none (counted and logged by [`sni::route`]).
async fn route<'a>(
    client: &mut TcpStream,
    peer: SocketAddr,
    svc: &'a TcpService,
) -> Option<Routed<'a>> {
    if svc.routes.is_empty() {
        return Some((None, None));
    }
    // As long as an HTTP listener waits for a request head by default.
    let r = sni::route(
        client,
        peer,
        &svc.routes,
        DEFAULT_HEADER_TIMEOUT,
        (&svc.listener.name, &svc.stats),
    )
    .await?;
    Some((r.route, Some((r.hello, r.sni))))
}

/// A connection's route and the ClientHello read to find it.
type Routed<'a> = (Option<&'a SniTarget>, Option<Hello>);

/// A ClientHello's bytes and server name.
type Hello = (Vec<u8>, Option<String>);

/// What a backend gets before the splice: the PROXY header the pool
/// wants, then the client's ClientHello when one was read to route it;
/// and the ClientHello's length (client bytes, counted as such).
fn opening(
    proxy_protocol: Option<crate::config::model::ProxyVersion>,
    (peer, local): (SocketAddr, SocketAddr),
    hello: Option<Hello>,
) -> (Vec<u8>, usize) {
    let (bytes, sni) = hello.unwrap_or_default();
    let Some(version) = proxy_protocol else {
        let len = bytes.len();
        return (bytes, len);
    };
    let a = crate::proxy_protocol::Addresses {
        source: peer,
        destination: local,
    };
    let mut out = crate::proxy_protocol::send::header(version, a, None, sni.as_deref());
    out.extend_from_slice(&bytes);
    (out, bytes.len())
}

/// Tries up to `connect_attempts` distinct backends of `pool` as it is
/// now; returns the connection, its backend's index and counters, and the
/// PROXY header the pool wants sent.
async fn connect(
    peer: SocketAddr,
    local: SocketAddr,
    (pool, passive): (&Arc<LivePool>, &Passive),
    svc: &TcpService,
) -> Option<(
    Reached<TcpStream>,
    Option<crate::config::model::ProxyVersion>,
)> {
    let pool = pool.load_full();
    let asker = Asker {
        listener: &svc.listener.name,
        attempts: svc.listener.connect_attempts.get() as usize,
        passive,
    };
    let timeout = svc.listener.connect_timeout;
    let flow = flow_tuple(peer, local, IPPROTO_TCP);
    match pool
        .attempt(&flow, &asker, |a| connect_tcp(a, timeout))
        .await
    {
        Ok(reached) => Some((reached, pool.proxy_protocol)),
        Err(why) => {
            if let Some(suppressed) = svc.stats.log.allow() {
                warn!(listener = %svc.listener.name, pool = %pool.name, %peer, error = %why, suppressed,
                    "no backend reachable; closing client");
            }
            None
        }
    }
}

fn tune(s: &TcpStream) {
    // Both are best effort: a socket that refuses them still works.
    let _ = s.set_nodelay(true);
    let _ = SockRef::from(s).set_tcp_keepalive(&super::keepalive());
}
