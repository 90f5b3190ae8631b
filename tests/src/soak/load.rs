//! The soak's clients: one task per connection (or UDP socket), each making
//! requests at a fixed rate until told to stop or its deadline passes, and
//! recording every outcome. They behave as ordinary clients do: a
//! keep-alive connection the server closed between requests (an upgrade
//! hands over, a backend closes its idle connections) is opened again and
//! the request sent there, counted as a reconnect, not as a failure. A
//! reset, a timeout or a wrong answer is a failure.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode, client::conn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpStream, UdpSocket},
};

use super::record::{Plane, Recorder};

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a UDP answer may take before the request counts as lost.
const UDP_TIMEOUT: Duration = Duration::from_secs(1);
/// Open-loop requests in flight at most, per target.
const IN_FLIGHT: usize = 64;

/// TLS toward a listener.
#[derive(Clone)]
pub struct Tls {
    /// Trusts the test CA; ALPN as the target speaks.
    pub config: Arc<rustls::ClientConfig>,
    /// The SNI sent.
    pub name: ServerName<'static>,
}

/// One kind of client traffic.
#[derive(Clone)]
pub struct Target {
    /// What it loads.
    pub plane: Plane,
    /// Where it connects.
    pub addr: SocketAddr,
    /// TLS, when the listener terminates it.
    pub tls: Option<Tls>,
    /// HTTP/2 instead of HTTP/1.1 (not for UDP).
    pub http2: bool,
    /// Keep connections (or UDP sockets) for many requests, one request
    /// at a time on each; false: every request on its own, arriving at the
    /// rate whatever the answers take.
    pub reuse: bool,
    /// Kept connections (or UDP sockets); without `reuse`, a multiplier of
    /// `per_sec`.
    pub connections: usize,
    /// Requests a second on each connection.
    pub per_sec: u32,
}

/// Runs every target until `stop` or `deadline`, on one thread (call it
/// inside the client's namespace: every socket is made on this thread).
///
/// # Panics
/// When the runtime cannot be built.
pub fn run(targets: &[Target], rec: &Arc<Recorder>, stop: &Arc<AtomicBool>, deadline: Instant) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in targets {
            let t = Arc::new(t.clone());
            if !t.reuse {
                let (rec, stop) = (rec.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    open_loop(t, rec, &stop, deadline).await;
                }));
                continue;
            }
            for n in 0..t.connections {
                let (t, rec, stop) = (t.clone(), rec.clone(), stop.clone());
                // Staggered so the connections do not tick together.
                let offset = Duration::from_millis(37 * n as u64);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    if t.plane.is_udp() {
                        let Some(socket) = udp_socket(&t, &rec).await else {
                            return;
                        };
                        let mut tick = ticker(t.per_sec);
                        let mut n = 0u64;
                        while running(&stop, deadline) {
                            tick.tick().await;
                            n += 1;
                            udp_exchange(&t, &rec, &socket, n).await;
                        }
                    } else {
                        http_loop(&t, &rec, &stop, deadline).await;
                    }
                }));
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// Requests that arrive at the target's rate whatever the answers take
/// (each on a new connection or UDP socket, as independent clients do),
/// at most [`IN_FLIGHT`] at once.
async fn open_loop(t: Arc<Target>, rec: Arc<Recorder>, stop: &AtomicBool, deadline: Instant) {
    let per_sec = t.per_sec * t.connections as u32;
    let mut tick = ticker(per_sec);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut n = 0u64;
    while running(stop, deadline) {
        tick.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        n += 1;
        let (t, rec) = (t.clone(), rec.clone());
        tokio::spawn(async move {
            if t.plane.is_udp() {
                if let Some(socket) = udp_socket(&t, &rec).await {
                    udp_exchange(&t, &rec, &socket, n).await;
                }
            } else {
                let mut held = None;
                match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&t, &rec, &mut held)).await {
                    Ok(Ok(())) => rec.ok(t.plane),
                    Ok(Err(e)) => rec.failed(t.plane, false, e),
                    Err(_) => rec.failed(t.plane, false, "timed out".into()),
                }
            }
            drop(slot);
        });
    }
    // Let the last requests finish.
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, slots.acquire_many(IN_FLIGHT as u32)).await;
}

fn ticker(per_sec: u32) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

fn running(stop: &AtomicBool, deadline: Instant) -> bool {
    !stop.load(Ordering::Relaxed) && Instant::now() < deadline
}

async fn http_loop(t: &Target, rec: &Recorder, stop: &AtomicBool, deadline: Instant) {
    let mut tick = ticker(t.per_sec);
    let mut held: Option<Sender> = None;
    while running(stop, deadline) {
        tick.tick().await;
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(t, rec, &mut held)).await;
        match outcome {
            Ok(Ok(())) => rec.ok(t.plane),
            Ok(Err(e)) => {
                held = None;
                rec.failed(t.plane, false, e);
            }
            Err(_) => {
                held = None;
                rec.failed(t.plane, false, "timed out".into());
            }
        }
        if !t.reuse {
            held = None;
        }
    }
}

/// One request, on the held connection when it is still open (else on a
/// new one); a held connection the server closed before answering gets the
/// request again on a new one, as HTTP clients do for idempotent requests.
async fn exchange(t: &Target, rec: &Recorder, held: &mut Option<Sender>) -> Result<(), String> {
    if let Some(s) = held.as_mut()
        && s.ready().await.is_err()
    {
        *held = None;
        rec.reconnect(t.plane);
    }
    let reused = held.is_some();
    let sender = match held {
        Some(s) => s,
        None => held.insert(connect(t).await?),
    };
    match sender.get(t).await {
        Ok(()) => Ok(()),
        Err(Failed::ClosedFirst(_)) if reused => {
            rec.reconnect(t.plane);
            let sender = held.insert(connect(t).await?);
            sender.get(t).await.map_err(Failed::text)
        }
        Err(e) => Err(e.text()),
    }
}

/// Why a request failed.
enum Failed {
    /// The server closed the connection before answering (or refused the
    /// stream as it went away): safe to send again elsewhere.
    ClosedFirst(String),
    /// Anything else.
    Other(String),
}

impl Failed {
    fn text(self) -> String {
        match self {
            Self::ClosedFirst(s) => format!("closed before answering: {s}"),
            Self::Other(s) => s,
        }
    }

    fn of(e: &hyper::Error) -> Self {
        let gone = e.is_canceled()
            || e.is_incomplete_message()
            || std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<h2::Error>())
                .is_some_and(|h| {
                    h.reason() == Some(h2::Reason::REFUSED_STREAM)
                        || (h.is_go_away() && h.reason() == Some(h2::Reason::NO_ERROR))
                });
        if gone {
            Self::ClosedFirst(e.to_string())
        } else {
            Self::Other(format!("{e}: {:?}", std::error::Error::source(e)))
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection's request side.
enum Sender {
    H1(conn::http1::SendRequest<Empty<Bytes>>),
    H2(conn::http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Self::H1(s) => s.ready().await,
            Self::H2(s) => s.ready().await,
        }
    }

    async fn get(&mut self, t: &Target) -> Result<(), Failed> {
        let scheme = if t.tls.is_some() { "https" } else { "http" };
        let request = |uri: String| {
            Request::get(uri)
                .header(hyper::header::HOST, t.addr.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|e| Failed::Other(e.to_string()))
        };
        let response = match self {
            Self::H1(s) => s.send_request(request("/".into())?).await,
            Self::H2(s) => {
                s.send_request(request(format!("{scheme}://{}/", t.addr))?)
                    .await
            }
        }
        .map_err(|e| Failed::of(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failed::Other(format!("body: {e}")))?
            .to_bytes();
        if status == StatusCode::OK && body.starts_with(b"backend-") {
            Ok(())
        } else {
            Err(Failed::Other(format!(
                "{status}: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            )))
        }
    }
}

async fn connect(t: &Target) -> Result<Sender, String> {
    let tcp = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match &t.tls {
        Some(tls) => Box::new(
            tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(tls.name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?,
        ),
        None => Box::new(tcp),
    };
    let io = TokioIo::new(io);
    if t.http2 {
        let (sender, connection) = conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Sender::H1(sender))
    }
}

async fn udp_socket(t: &Target, rec: &Recorder) -> Option<UdpSocket> {
    let local: SocketAddr = if t.addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("wildcard address");
    match UdpSocket::bind(local).await {
        Ok(s) if s.connect(t.addr).await.is_ok() => Some(s),
        _ => {
            rec.failed(t.plane, false, "cannot open a UDP socket".into());
            None
        }
    }
}

/// Request `n` on `socket` and its answer; late answers to earlier
/// requests are skipped.
async fn udp_exchange(t: &Target, rec: &Recorder, socket: &UdpSocket, n: u64) {
    let ask = format!("soak-{n}");
    if let Err(e) = socket.send(ask.as_bytes()).await {
        rec.failed(t.plane, false, format!("send: {e}"));
        return;
    }
    let want = format!("={ask}");
    let mut buf = [0u8; 512];
    let answered = tokio::time::timeout(UDP_TIMEOUT, async {
        loop {
            match socket.recv(&mut buf).await {
                Ok(len) if buf[..len].ends_with(want.as_bytes()) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match answered {
        Ok(Ok(())) => rec.ok(t.plane),
        Ok(Err(e)) => rec.failed(t.plane, false, format!("receive: {e}")),
        Err(_) => rec.failed(t.plane, true, "no answer within 1 s".into()),
    }
}
