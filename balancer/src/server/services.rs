//! Building and starting the services of proxy-plane listeners: a TCP
//! listener's pools (its own and its SNI routes'), a UDP listener's, an
//! `http` listener's; TLS to backends per pool; the connection limit kept
//! across reloads.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, watch},
};
use tracing::info;

use super::listeners::{Running, Service, Shared, Socket};
use crate::{
    config::{
        Config,
        model::{Listener, Mode, ProxyEngine},
    },
    http::{self, HttpService},
    proxy::{self, sni::SniTarget, tcp::TcpService, udp::UdpService},
    reload::ListenerError,
    runtime::{
        ListenerStats, LivePool,
        control::{Event, Passive},
    },
    tls::upstream::Connector,
};

/// The connection limit for `l` in place of `old`'s: the same limit keeps
/// its semaphore, so open connections still count; a new limit starts
/// afresh (connections open under the old one then count against neither).
pub(super) fn kept_limit(old: &Listener, limit: &Arc<Semaphore>, l: &Listener) -> Arc<Semaphore> {
    if old.max_connections == l.max_connections {
        limit.clone()
    } else {
        Arc::new(Semaphore::new(l.max_connections.get() as usize))
    }
}

/// Serves `socket` for `http` listener `l` on a task of its own.
pub(super) fn start_http(l: &Listener, socket: TcpListener, service: HttpService) -> Running {
    let (stop, stopped) = watch::channel(false);
    let live = Arc::new(ArcSwap::from_pointee(service));
    let task = tokio::spawn(http::serve(socket, live.clone(), stopped));
    let routes = l.http.as_ref().map_or(0, |h| h.routes.len());
    info!(listener = %l.name, address = %l.address, protocol = %l.protocol, plane = "http",
        routes, "listening");
    Running::new(l, Service::Http(live), stop, task)
}

/// Serves `socket` for listener `l` on a task of its own.
pub(super) fn start(
    shared: &Shared,
    l: &Listener,
    socket: Socket,
    (pool, passive, routes): (Arc<LivePool>, Passive, Vec<SniTarget>),
    stats: &Arc<ListenerStats>,
) -> Running {
    let (stop, stopped) = watch::channel(false);
    let algorithm = pool.load().algorithm;
    let pool_name = pool.load().name.clone();
    let (service, task) = match socket {
        Socket::Tcp(s) => {
            let limit = Arc::new(Semaphore::new(l.max_connections.get() as usize));
            let live = Arc::new(ArcSwap::from_pointee(tcp(
                shared,
                l,
                (pool.clone(), passive, routes),
                stats,
                limit,
            )));
            let task = tokio::spawn(proxy::tcp::serve(s, live.clone(), stopped));
            (Service::Tcp(live), task)
        }
        Socket::Udp(s) => {
            let live = Arc::new(ArcSwap::from_pointee(udp(l, pool, passive, stats)));
            let task = tokio::spawn(proxy::udp::serve(
                s,
                live.clone(),
                stopped,
                shared.tracker.clone(),
            ));
            (Service::Udp(live), task)
        }
    };
    if l.mode == Mode::Auto {
        info!(listener = %l.name, "mode auto: served by the proxy plane (XDP needs the `xdp` section, a maglev pool and backends on the listener's port)");
    }
    info!(listener = %l.name, address = %l.address, protocol = %l.protocol, plane = "proxy",
        pool = %pool_name, %algorithm, sni_routes = l.sni_routes.len(), "listening");
    Running::new(l, service, stop, task)
}

/// TLS to the backends of every pool of `config` that has `tls`, its
/// files read now: one that cannot be used stops the start or refuses the
/// reload.
pub(super) fn connectors(config: &Config) -> Result<Vec<Option<Arc<Connector>>>, ListenerError> {
    config
        .pools
        .iter()
        .map(|p| {
            p.tls
                .as_ref()
                .map(|t| {
                    Connector::new(t, p.http.version)
                        .map(Arc::new)
                        .map_err(|source| ListenerError::BackendTls {
                            pool: p.name.clone(),
                            source,
                        })
                })
                .transpose()
        })
        .collect()
}

/// Listener `l`'s SNI routes over `pools`, reporting for `generation`.
pub(super) fn sni_targets(
    l: &Listener,
    pools: &[Arc<LivePool>],
    generation: u64,
    events: &mpsc::Sender<Event>,
) -> Vec<SniTarget> {
    l.sni_routes
        .iter()
        .map(|r| SniTarget {
            name: r.name.clone(),
            sni: r.sni.clone(),
            pool: pools[r.pool].clone(),
            passive: Passive::new(r.pool, generation, events.clone()),
        })
        .collect()
}

/// A TCP listener's service over its pool and SNI routes.
pub(super) fn tcp(
    shared: &Shared,
    l: &Listener,
    (pool, passive, routes): (Arc<LivePool>, Passive, Vec<SniTarget>),
    stats: &Arc<ListenerStats>,
    limit: Arc<Semaphore>,
) -> TcpService {
    TcpService {
        listener: l.clone(),
        pool,
        passive,
        routes,
        stats: stats.clone(),
        pipes: shared.pipes.clone(),
        relay: engine(shared, l),
        tracker: shared.tracker.clone(),
        limit,
    }
}

/// The sockmap relay when listener `l` moves its bytes with it. `auto`
/// means splice: it measured faster on every figure (docs/bench/proxy.md).
fn engine(shared: &Shared, l: &Listener) -> Option<Arc<crate::proxy::sockmap::load::Relay>> {
    match l.proxy_engine {
        ProxyEngine::Splice | ProxyEngine::Auto => None,
        // `Listeners::bind` has loaded it, or refused the listener.
        ProxyEngine::Sockmap => shared.relay.get().ok(),
    }
}

pub(super) fn udp(
    l: &Listener,
    pool: Arc<LivePool>,
    passive: Passive,
    stats: &Arc<ListenerStats>,
) -> UdpService {
    UdpService {
        listener: l.clone(),
        pool,
        passive,
        stats: stats.clone(),
    }
}
