//! One request from its head to the end of its answer (pingora's
//! per-request context): made when the head arrives, filled in as the
//! request goes (route, backend, retries, bytes), and read last, when the
//! answer's body has been sent (or dropped): then the route's counters
//! take it and the access log gets its line.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime},
};

use http::{Request, header};

use super::{clock::InFlight, log::AccessLog};
use crate::runtime::{ActiveGuard, http_stats::RouteStats};

/// The parts of a request its log line needs, kept only when there is a
/// log.
struct Logged {
    log: Arc<AccessLog>,
    listener: String,
    method: String,
    host: Option<String>,
    path: String,
    version: &'static str,
    referer: Option<String>,
    user_agent: Option<String>,
}

/// One request in flight.
pub struct Exchange {
    started: Instant,
    at: SystemTime,
    client: SocketAddr,
    /// The route that took it, for counting.
    pub route: Arc<RouteStats>,
    /// The answer's status, once known.
    pub status: u16,
    /// The backend that answered, if one did.
    pub backend: Option<SocketAddr>,
    /// Requests sent again before the answer.
    pub retries: u32,
    /// Body bytes from the client.
    pub bytes_in: Arc<AtomicU64>,
    /// Body bytes to the client.
    pub bytes_out: Arc<AtomicU64>,
    /// The backend's in-flight count, while its answer streams.
    pub active: Option<ActiveGuard>,
    logged: Option<Logged>,
    _in_flight: InFlight,
}

impl Exchange {
    /// Starts timing `req` for `host` from `client` on `listener`, counted
    /// under `route` until a route is chosen.
    pub fn new<B>(
        req: &Request<B>,
        host: Option<&str>,
        client: SocketAddr,
        listener: &str,
        route: Arc<RouteStats>,
        log: Option<&Arc<AccessLog>>,
        in_flight: InFlight,
    ) -> Self {
        let text = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let logged = log.map(|log| Logged {
            log: log.clone(),
            listener: listener.to_owned(),
            method: req.method().to_string(),
            host: host.map(str::to_owned),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            version: version(req.version()),
            referer: text(header::REFERER),
            user_agent: text(header::USER_AGENT),
        });
        Self {
            started: Instant::now(),
            at: SystemTime::now(),
            client,
            route,
            status: 0,
            backend: None,
            retries: 0,
            bytes_in: Arc::default(),
            bytes_out: Arc::default(),
            active: None,
            logged,
            _in_flight: in_flight,
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        self.route.record(self.status, took);
        if let Some(l) = &self.logged {
            l.log.log(&super::log::Entry {
                at: self.at,
                listener: &l.listener,
                client: self.client,
                method: &l.method,
                host: l.host.as_deref(),
                path: &l.path,
                version: l.version,
                status: self.status,
                bytes_in: self.bytes_in.load(Ordering::Relaxed),
                bytes_out: self.bytes_out.load(Ordering::Relaxed),
                route: &self.route.name,
                backend: self.backend,
                took,
                retries: self.retries,
                referer: l.referer.as_deref(),
                user_agent: l.user_agent.as_deref(),
            });
        }
    }
}

const fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
