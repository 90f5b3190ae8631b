//! The floor under the HTTP layer, for the HTTP benchmark: the least a
//! reverse proxy built on hyper does. hyper-util's auto server (HTTP/1 and
//! HTTP/2 by prior knowledge) hands each request, untouched, to a kept-alive
//! HTTP/1.1 connection to the next backend in turn. No routing, header
//! rewriting, limits, timeouts, retries, health or counters. What the
//! balancer costs beyond this is the layer's own; what this costs against
//! HAProxy is hyper's.
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
use tokio::net::{TcpListener, TcpStream};

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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, backends))
}

async fn serve(listen: SocketAddr, backends: Arc<Backends>) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
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
    let mut sender = match kept {
        Some(s) => s,
        None => {
            let stream = TcpStream::connect(backends.addresses[i]).await?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender
        }
    };
    sender.ready().await?;
    // HTTP/2 clients' requests go upstream as HTTP/1.1.
    *req.version_mut() = http::Version::HTTP_11;
    let response = sender.send_request(req).await?;
    // Back at once: the next request on it waits in `ready` for this
    // answer's body to be read.
    if let Ok(mut l) = backends.idle[i].lock() {
        l.push(sender);
    }
    Ok(response)
}
