//! The floor under the HTTP layer, for the HTTP benchmark: the least a
//! reverse proxy built on hyper does. hyper-util's auto server (HTTP/1 and
//! HTTP/2 by prior knowledge) hands each request to a kept-alive HTTP/1.1
//! connection to the next backend in turn, changing only what HTTP/1.1
//! needs (`Connection` dropped so the backend connection stays open; an
//! HTTP/2 request's authority as `Host`, its path as the target). No
//! routing, header rewriting, limits, timeouts, retries, health or
//! counters. What the
//! balancer costs beyond this is the layer's own; what this costs against
//! the peers is hyper's.
//!
//! `hyper_floor LISTEN BACKEND...`; runs until killed.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::{Context as _, Result, bail};
use hyper::{Request, Response, body::Incoming, client::conn::http1};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpSocket, TcpStream};

/// Idle connections per backend, and the next backend's turn.
struct Backends {
    addresses: Vec<SocketAddr>,
    idle: Vec<Mutex<Vec<http1::SendRequest<Incoming>>>>,
    turn: AtomicUsize,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, backends @ ..] = args.as_slice() else {
        bail!("usage: hyper_floor LISTEN BACKEND...");
    };
    if backends.is_empty() {
        bail!("usage: hyper_floor LISTEN BACKEND...");
    }
    let listen: SocketAddr = listen.parse().context("LISTEN is not ip:port")?;
    let addresses = backends
        .iter()
        .map(|b| b.parse().context("a BACKEND is not ip:port"))
        .collect::<Result<Vec<SocketAddr>>>()?;
    let backends = Arc::new(Backends {
        idle: addresses.iter().map(|_| Mutex::default()).collect(),
        addresses,
        turn: AtomicUsize::new(0),
    });
    raise_descriptor_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, backends))
}

async fn serve(listen: SocketAddr, backends: Arc<Backends>) -> Result<()> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    // The balancer's backlog, so bursts of connections meet the same queue.
    let listener = socket.listen(4096)?;
    loop {
        // Out of descriptors: wait and go on, as the balancer does.
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let backends = backends.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| forward(backends.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Any error ends the client connection: the floor has no error answers.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn forward(
    backends: Arc<Backends>,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, BoxError> {
    let i = backends.turn.fetch_add(1, Ordering::Relaxed) % backends.addresses.len();
    let kept = backends.idle[i].lock().ok().and_then(|mut l| l.pop());
    let mut sender = if let Some(s) = kept {
        s
    } else {
        let stream = TcpStream::connect(backends.addresses[i]).await?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        sender
    };
    sender.ready().await?;
    // HTTP/2 clients' requests go upstream as HTTP/1.1.
    if let Some(authority) = req.uri().authority().cloned() {
        let value = http::HeaderValue::from_str(authority.as_str())?;
        req.headers_mut().entry(http::header::HOST).or_insert(value);
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        *req.uri_mut() = target;
    }
    *req.version_mut() = http::Version::HTTP_11;
    req.headers_mut().remove(http::header::CONNECTION);
    let response = sender.send_request(req).await?;
    // Back at once: the next request on it waits in `ready` for this
    // answer's body to be read.
    if let Ok(mut l) = backends.idle[i].lock() {
        l.push(sender);
    }
    Ok(response)
}

/// Descriptors up to the hard limit, as the balancer raises its own.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
        }
    }
}
