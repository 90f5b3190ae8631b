//! The HTTP layer: `mode: http` listeners. One file per step a request
//! takes, in the spirit of pingora's phases: a connection is accepted here
//! and served by hyper ([`conn`], with the socket's own clocks in
//! [`clock`]); each request is matched to a route ([`route`]), counted
//! against its rate limit ([`limit`]), rewritten ([`forward`]) and sent
//! through the shared attempt loop to a kept-alive backend connection
//! ([`upstream`]); the layer's own answers are in [`answer`], the bodies it
//! streams in [`body`], and [`service`] runs the steps in order.
//!
//! A listener's [`HttpService`] is swapped whole at a reload; a connection
//! reads the current one for each request, so kept-alive and HTTP/2
//! connections follow the new routes without being cut.

pub mod answer;
pub mod body;
pub mod clock;
pub mod compress;
pub mod conn;
pub mod exchange;
pub mod forward;
pub mod limit;
pub mod log;
pub mod route;
pub mod service;
pub mod upgrade;
pub mod upstream;

use std::sync::{Arc, atomic::AtomicU64};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};

use self::{limit::Limiter, log::AccessLog, route::RouteTable, upstream::Upstreams};
use crate::{
    config::{
        Config,
        http::{HttpListener, PoolHttp},
        model::Listener,
    },
    runtime::{
        ListenerStats, LivePool, Tracker,
        control::Passive,
        http_stats::{DEFAULT_ROUTE, RouteStats},
    },
    tls::{Terminator, upstream::Connector},
};

/// What one `http` listener needs at run time.
pub struct HttpService {
    /// The listener's validated settings.
    pub listener: Listener,
    /// Its routes and limits.
    pub http: HttpListener,
    /// Its routes, compiled.
    pub table: RouteTable,
    /// Each route's rate limiter, by route index.
    pub limiters: Vec<Option<Arc<Limiter>>>,
    /// Every pool of the config, by index (routes may name any).
    pub pools: Vec<Arc<LivePool>>,
    /// How to speak to each pool's backends, by index.
    pub upstream_settings: Vec<PoolHttp>,
    /// TLS to each pool's backends, by index (`None`: cleartext).
    pub upstream_tls: Vec<Option<Arc<Connector>>>,
    /// Where each pool's failures go, by index.
    pub passive: Vec<Passive>,
    /// Kept-alive backend connections (shared by every listener).
    pub upstreams: Arc<Upstreams>,
    /// Its counters.
    pub stats: Arc<ListenerStats>,
    /// Open-connection tracker (graceful shutdown waits on it).
    pub tracker: Tracker,
    /// Permits for `max_connections`, kept across reloads that keep it.
    pub limit: Arc<Semaphore>,
    /// Drives weighted splits.
    pub splits: AtomicU64,
    /// Each route's counters, by route index.
    pub route_stats: Vec<Arc<RouteStats>>,
    /// The counters of requests no route took.
    pub default_stats: Arc<RouteStats>,
    /// The access log, if the listener has one.
    pub access_log: Option<Arc<AccessLog>>,
    /// TLS termination, if the listener has it: swapped in place when
    /// certificate files change on disk.
    pub tls: Option<arc_swap::ArcSwap<Terminator>>,
}

/// A listener's service as a reload swaps it.
pub type LiveHttp = arc_swap::ArcSwap<HttpService>;

/// What an `http` listener's service is built from.
pub struct Parts<'a> {
    /// The config.
    pub config: &'a Config,
    /// The listener (in `http` mode).
    pub listener: &'a Listener,
    /// Every pool, by index.
    pub pools: &'a [Arc<LivePool>],
    /// Passive reports for each pool, by index.
    pub passive: Vec<Passive>,
    /// Kept-alive backend connections.
    pub upstreams: Arc<Upstreams>,
    /// The listener's counters.
    pub stats: Arc<ListenerStats>,
    /// Open-connection tracker.
    pub tracker: Tracker,
    /// Permits for `max_connections`.
    pub limit: Arc<Semaphore>,
    /// The access log, if the listener has one.
    pub access_log: Option<Arc<AccessLog>>,
    /// TLS termination, with its certificates loaded.
    pub tls: Option<Arc<Terminator>>,
    /// TLS to each pool's backends, by index, its files loaded.
    pub upstream_tls: Vec<Option<Arc<Connector>>>,
    /// The service this one replaces at a reload, whose rate-limit buckets
    /// carry over.
    pub previous: Option<Arc<HttpService>>,
}

impl HttpService {
    /// Builds the service; the listener must be in `http` mode.
    #[must_use]
    pub fn new(p: Parts<'_>) -> Self {
        let http = p.listener.http.clone().unwrap_or_default();
        let table = RouteTable::new(&http.routes);
        // A route that keeps its name and its limit keeps its buckets: a
        // reload must not hand every client a fresh burst.
        let limiters =
            http.routes
                .iter()
                .map(|r| {
                    let limit = r.rate_limit.as_ref()?;
                    let kept = p.previous.as_ref().and_then(|old| {
                        let (j, _) = old.http.routes.iter().enumerate().find(|(_, o)| {
                            o.name == r.name && o.rate_limit.as_ref() == Some(limit)
                        })?;
                        old.limiters.get(j)?.clone()
                    });
                    Some(kept.unwrap_or_else(|| Arc::new(Limiter::new(limit))))
                })
                .collect();
        let route_stats = http
            .routes
            .iter()
            .map(|r| p.stats.http.route(&r.name))
            .collect();
        let default_stats = p.stats.http.route(DEFAULT_ROUTE);
        Self {
            route_stats,
            default_stats,
            access_log: p.access_log,
            tls: p.tls.map(arc_swap::ArcSwap::new),
            listener: p.listener.clone(),
            http,
            table,
            limiters,
            pools: p.pools.to_vec(),
            upstream_settings: p.config.pools.iter().map(|x| x.http.clone()).collect(),
            upstream_tls: p.upstream_tls,
            passive: p.passive,
            upstreams: p.upstreams,
            stats: p.stats,
            tracker: p.tracker,
            limit: p.limit,
            splits: AtomicU64::new(0),
        }
    }
}

/// Accepts until `shutdown` turns true; connections already accepted are
/// told to finish their requests and close.
pub async fn serve(socket: TcpListener, live: Arc<LiveHttp>, shutdown: watch::Receiver<bool>) {
    // Connections are told to finish (HTTP/2 gets its GOAWAY) only once this
    // loop accepts no more: a client that reconnects at once must reach the
    // daemon that goes on (after an upgrade, the new one), not this one.
    let (drain, draining) = watch::channel(false);
    let service = live.clone();
    crate::proxy::accept::serve(socket, live, shutdown, move |stream, peer, _| {
        conn::serve(stream, peer, service.clone(), draining.clone())
    })
    .await;
    let _ = drain.send(true);
}

impl crate::proxy::accept::Admitting for HttpService {
    fn admission(&self) -> crate::proxy::accept::Admission<'_> {
        crate::proxy::accept::Admission {
            listener: &self.listener,
            stats: &self.stats,
            limit: &self.limit,
            tracker: &self.tracker,
        }
    }
}
