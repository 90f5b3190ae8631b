//! Requests to backends: the pool's selector and health through the one
//! attempt loop ([`PoolState::attempt`]), kept-alive connections per
//! backend, and pingora's retry rule, widened as nginx does for idempotent
//! requests. Any request may be tried again when nothing of it reached the
//! backend (the connect failed, or a pooled connection refused it unsent);
//! an idempotent request without a body may also be tried again when the
//! connection closed or was reset before any byte of the answer (on a
//! reused connection that is a backend closing an idle connection as the
//! request went out; on a new one, a backend that died). A request whose
//! body was sent is never repeated, nor one the backend answered.
//!
//! HTTP/1.1 connections are pooled per backend ([`idle`]); an HTTP/2
//! (h2c, or h2 over TLS) backend gets one shared connection that carries
//! every request as a stream. A pool with `tls` speaks TLS to its
//! backends; its connections are kept apart from those of other TLS
//! settings to the same address (another SNI is another origin).

mod idle;
mod retry;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use balancer_common::FlowTuple;
use http::{Request, Response, StatusCode, request::Parts};
use http_body_util::BodyExt as _;
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use self::idle::{IdleLists, Return, Returning, Room};
pub use self::retry::{Next, Outcome, next};
use super::body::Body;
use crate::{
    config::http::PoolHttp,
    proxy::connect_tcp,
    runtime::{
        BackendStats, PoolState,
        attempt::{Asker, Reached, Unreachable},
        failure::{Failure, Step},
    },
    tls::upstream::Connector,
};

/// A backend address and the identity of the TLS settings toward it (0
/// for cleartext): connections are kept and shared per origin.
pub type Origin = (SocketAddr, u64);

/// How often idle connections past their time are closed.
const SWEEP: Duration = Duration::from_secs(5);

/// A connection to one backend.
enum Conn {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// A connection checked out for one request.
struct Checkout {
    conn: Conn,
    /// Whether it served a request before (a stale keep-alive may fail).
    reused: bool,
}

/// Kept-alive connections to every backend, shared by all `http`
/// listeners and kept across reloads.
#[derive(Default)]
pub struct Upstreams {
    idle: Arc<IdleLists>,
    h2: Mutex<HashMap<Origin, http2::SendRequest<Body>>>,
    opened: AtomicU64,
    reused: AtomicU64,
}

/// A request to send, kept so it can be rebuilt for a retry when it has
/// no body.
pub struct Outgoing {
    /// Method, URI, version, headers and extensions.
    pub parts: Parts,
    /// The body, or `None` for a request without one.
    pub body: Option<Body>,
}

/// What sending asks for besides the request.
pub struct Send<'a> {
    /// The pool, as it is now.
    pub pool: &'a PoolState,
    /// How to speak to its backends.
    pub settings: &'a PoolHttp,
    /// The flow the selector hashes (client and listener addresses).
    pub flow: &'a FlowTuple,
    /// The listener asking, its attempts and passive health.
    pub asker: &'a Asker<'a>,
    /// Time for one connect.
    pub connect_timeout: Duration,
    /// Time for the backend to start its answer.
    pub response_timeout: Duration,
    /// Whether the method may be repeated (RFC 9110, 9.2.2).
    pub idempotent: bool,
    /// The PROXY header the pool's backends want first. A connection that
    /// carried one speaks for one client: it is opened for this request
    /// and never pooled or shared (`HAProxy` marks such connections
    /// private the same way).
    pub proxy_header: Option<&'a [u8]>,
    /// TLS to the pool's backends, when it has `tls`.
    pub tls: Option<&'a Connector>,
}

/// A backend's answer.
pub struct Answered {
    /// The answer, its body still streaming.
    pub response: Response<Body>,
    /// The backend that answered.
    pub address: SocketAddr,
    /// Its counters.
    pub stats: Arc<BackendStats>,
    /// Requests sent before this one succeeded.
    pub retries: u32,
}

impl Upstreams {
    /// An empty set, with a task that closes connections idle past their
    /// time (it ends when the set is dropped).
    #[must_use]
    pub fn start() -> Arc<Self> {
        let me = Arc::new(Self::default());
        let weak = Arc::downgrade(&me);
        tokio::spawn(sweep(weak));
        me
    }

    /// Connections opened, and requests sent on a kept-alive one.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (
            self.opened.load(Ordering::Relaxed),
            self.reused.load(Ordering::Relaxed),
        )
    }

    /// Sends `out` to a backend of `s.pool` and returns the answer's head,
    /// retrying by the rule in the module header.
    pub async fn send(
        self: &Arc<Self>,
        s: &Send<'_>,
        out: Outgoing,
    ) -> Result<Answered, Unreachable> {
        let Outgoing { parts, body } = out;
        let bodiless = body.is_none();
        let mut pending = Some(rebuild(&parts, body));
        let mut fresh = s.proxy_header.is_some();
        let mut retries = 0;
        let mut last;
        let most = s.asker.attempts.max(1);
        loop {
            let req = match pending.take() {
                Some(r) => r,
                None => rebuild(&parts, None),
            };
            let reached = s
                .pool
                .attempt(s.flow, s.asker, |a| self.checkout(a, s, fresh))
                .await?;
            let Reached {
                conn: checkout,
                index,
                address,
                stats,
            } = reached;
            let reused = checkout.reused;
            let counter = if reused { &self.reused } else { &self.opened };
            counter.fetch_add(1, Ordering::Relaxed);
            let (outcome, failure) = match self.exchange(checkout, address, req, s).await {
                Ok(response) => {
                    return Ok(Answered {
                        response,
                        address,
                        stats,
                        retries,
                    });
                }
                Err(Lost::Unsent(req)) => {
                    pending = Some(*req);
                    (Outcome::Unsent, Failure::Unanswered)
                }
                Err(Lost::Sent(f)) => (Outcome::SentUnanswered, f),
                Err(Lost::Failed(f)) => (Outcome::Failed, f),
            };
            match next(outcome, reused, bodiless, s.idempotent) {
                Next::Retry { blame } => {
                    if blame {
                        s.asker.passive.report(index, failure.clone());
                    }
                    debug!(%address, reused, ?outcome, "repeating the request on a new connection");
                }
                Next::Fail => {
                    s.asker.passive.report(index, failure.clone());
                    return Err(Unreachable::Failed {
                        tried: retries as usize + 1,
                        last: failure,
                    });
                }
            }
            last = failure;
            retries += 1;
            fresh = true;
            if retries as usize >= most {
                return Err(Unreachable::Failed {
                    tried: retries as usize,
                    last,
                });
            }
        }
    }

    /// A connection to `address`: an idle one unless `fresh`, else a new
    /// one made within the connect timeout (with the PROXY header first
    /// when the pool wants one, then the TLS handshake when it has `tls`).
    async fn checkout(
        self: &Arc<Self>,
        address: SocketAddr,
        s: &Send<'_>,
        fresh: bool,
    ) -> Result<Checkout, Failure> {
        let origin = (address, s.tls.map_or(0, |t| t.id));
        let h2 = s.settings.version.is_h2();
        if !fresh && h2 {
            if let Some(sender) = self.shared_h2(origin) {
                return Ok(Checkout {
                    conn: Conn::H2(sender),
                    reused: true,
                });
            }
        } else if !fresh {
            while let Some(mut sender) = self.idle.take(origin) {
                // Ready at once unless the backend closed it meanwhile:
                // then the next one, before a new connection.
                if sender.ready().await.is_ok() {
                    return Ok(Checkout {
                        conn: Conn::H1(sender),
                        reused: true,
                    });
                }
            }
        }
        let tcp = open(address, s).await?;
        let conn = match s.tls {
            None => handshake(tcp, address, h2).await?,
            Some(t) => {
                handshake(
                    t.connect(tcp, address, s.connect_timeout).await?,
                    address,
                    h2,
                )
                .await?
            }
        };
        if let Conn::H2(sender) = &conn
            && s.proxy_header.is_none()
            && let Ok(mut shared) = self.h2.lock()
        {
            shared.insert(origin, sender.clone());
        }
        Ok(Checkout {
            conn,
            reused: false,
        })
    }

    /// Sends `req` on `checkout` and waits for the answer's head.
    async fn exchange(
        self: &Arc<Self>,
        checkout: Checkout,
        address: SocketAddr,
        req: Request<Body>,
        s: &Send<'_>,
    ) -> Result<Response<Body>, Lost> {
        let timeout = s.response_timeout;
        let origin = (address, s.tls.map_or(0, |t| t.id));
        match checkout.conn {
            Conn::H1(mut sender) => {
                if sender.ready().await.is_err() {
                    return Err(Lost::Unsent(Box::new(req)));
                }
                let sent = tokio::time::timeout(timeout, sender.try_send_request(req)).await;
                let response = answer(sent, timeout)?;
                // A switched connection belongs to the tunnel; any other
                // goes back to the idle list when its answer is read.
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    return Ok(response.map(|b| b.map_err(Into::into).boxed()));
                }
                let back = Return {
                    lists: self.idle.clone(),
                    origin,
                    sender,
                    room: Room {
                        // A connection that named its client stays its own.
                        max_idle: if s.proxy_header.is_some() {
                            0
                        } else {
                            s.settings.max_idle
                        },
                        timeout: s.settings.idle_timeout,
                    },
                };
                Ok(response.map(|b| Returning::new(b, back).boxed()))
            }
            Conn::H2(mut sender) => {
                if sender.ready().await.is_err() {
                    if let Ok(mut shared) = self.h2.lock() {
                        shared.remove(&origin);
                    }
                    return Err(Lost::Unsent(Box::new(req)));
                }
                let sent = tokio::time::timeout(timeout, sender.try_send_request(req)).await;
                Ok(answer(sent, timeout)?.map(|b| b.map_err(Into::into).boxed()))
            }
        }
    }

    fn shared_h2(&self, origin: Origin) -> Option<http2::SendRequest<Body>> {
        let shared = self.h2.lock().ok()?;
        shared.get(&origin).filter(|s| !s.is_closed()).cloned()
    }
}

/// How a request was lost.
enum Lost {
    /// Nothing of it reached the backend: it comes back whole (boxed: a
    /// request is large beside a failure).
    Unsent(Box<Request<Body>>),
    /// It was sent (at least in part) and no answer came.
    Sent(Failure),
    /// The backend answered in a way that is a failure (too slow, not
    /// HTTP).
    Failed(Failure),
}

/// The answer of a send, or how the request was lost.
fn answer(
    sent: Result<
        Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>>,
        tokio::time::error::Elapsed,
    >,
    timeout: Duration,
) -> Result<Response<Incoming>, Lost> {
    match sent {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(mut e)) => {
            if let Some(req) = e.take_message() {
                return Err(Lost::Unsent(Box::new(req)));
            }
            let f = classify(e.error());
            if matches!(f, Failure::Answer { .. }) {
                Err(Lost::Failed(f))
            } else {
                Err(Lost::Sent(f))
            }
        }
        Err(_) => Err(Lost::Failed(Failure::Timeout(timeout))),
    }
}

/// The failure a hyper client error stands for.
fn classify(e: &hyper::Error) -> Failure {
    if e.is_parse() || e.is_parse_status() {
        return Failure::answer(b"", "not an HTTP response");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Failure::io(Step::Read, io);
        }
        source = s.source();
    }
    Failure::Unanswered
}

/// The HTTP/1.1 or HTTP/2 client handshake over `io`, its connection
/// driven by a task of its own.
async fn handshake<T>(io: T, address: SocketAddr, h2: bool) -> Result<Conn, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + std::marker::Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%address, error = %e, "upstream h2 connection ended");
            }
        });
        return Ok(Conn::H2(sender));
    }
    let (sender, conn) = http1::Builder::new()
        .preserve_header_case(true)
        .handshake(io)
        .await
        .map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(%address, error = %e, "upstream connection ended");
        }
    });
    Ok(Conn::H1(sender))
}

/// A new connection to `address`, Nagle off, the pool's PROXY header sent
/// first.
async fn open(address: SocketAddr, s: &Send<'_>) -> Result<tokio::net::TcpStream, Failure> {
    let mut stream = nodelay(connect_tcp(address, s.connect_timeout).await?);
    if let Some(header) = s.proxy_header {
        use tokio::io::AsyncWriteExt as _;
        stream
            .write_all(header)
            .await
            .map_err(|e| Failure::io(Step::Send, &e))?;
    }
    Ok(stream)
}

/// `s` with Nagle off: a request head goes out at once, not after the
/// previous segment's ACK (best effort: a socket that refuses still works).
fn nodelay(s: tokio::net::TcpStream) -> tokio::net::TcpStream {
    let _ = s.set_nodelay(true);
    s
}

/// The request of `parts` with `body` (empty when `None`).
fn rebuild(parts: &Parts, body: Option<Body>) -> Request<Body> {
    let mut r = Request::new(body.unwrap_or_else(super::body::empty));
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = parts.uri.clone();
    *r.version_mut() = parts.version;
    *r.headers_mut() = parts.headers.clone();
    *r.extensions_mut() = parts.extensions.clone();
    r
}

/// Closes idle connections past their time, until the set is gone.
async fn sweep(set: Weak<Upstreams>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Some(set) = set.upgrade() else { return };
        set.idle.sweep();
        if let Ok(mut h2) = set.h2.lock() {
            h2.retain(|_, s| !s.is_closed());
        }
    }
}
