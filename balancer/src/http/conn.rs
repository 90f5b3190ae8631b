//! One client connection: HTTP/1.0, HTTP/1.1 and HTTP/2 by prior knowledge
//! on the same port (hyper-util's auto builder reads the preface), with the
//! listener's head size and header count limits (hyper answers 431 beyond
//! them, and 400 to what it cannot parse), HTTP/2 stream and flood limits,
//! the socket's clocks ([`super::clock`]), and a graceful close when the
//! listener stops. On a TLS listener the handshake wraps the socket first
//! (ALPN picks HTTP/2 or HTTP/1.1; the auto builder reads the preface
//! either way).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
};
use tracing::debug;

use crate::{proxy_protocol, tls::Handshake};

use super::{
    LiveHttp,
    clock::{Activity, Clocked},
    service::{self, Client},
};

/// HTTP/2 resets a client may cause before its connection is closed
/// (rapid reset, CVE-2023-44487): hyper's default is 20 pending
/// accept-resets; locally caused resets are capped as well.
const MAX_LOCAL_RESETS: usize = 1024;
/// HTTP/2 PING interval on an idle connection, and the wait for its
/// answer: a peer that vanished is noticed.
const H2_PING: Duration = Duration::from_secs(30);

/// Serves `stream` from `peer` until it closes, or until `stop` turns
/// true, when requests in flight finish and the connection closes. On a
/// TLS listener the handshake comes first (within its timeout).
pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    live: Arc<LiveHttp>,
    stop: watch::Receiver<bool>,
) {
    let svc = live.load_full();
    // A listed peer speaks for its client: without a header within the
    // head timeout, nothing of it is served.
    let Some(peer) = proxy_protocol::expect::client_of(
        &mut stream,
        peer,
        &svc.listener.accept_proxy_from,
        svc.http.limits.header_timeout,
        (&svc.listener.name, &svc.stats),
    )
    .await
    else {
        return;
    };
    let local = stream.local_addr().unwrap_or(svc.listener.address);
    let tls = svc.tls.as_ref().map(arc_swap::ArcSwap::load_full);
    let stats = svc.stats.clone();
    drop(svc);
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_io(stream, (peer, local), None, live, stop).await,
        Some(terminator) => {
            let accepted = Box::pin(terminator.accept(stream, &stats.tls)).await;
            if let Some((stream, handshake)) = accepted {
                drop((terminator, stats));
                // Boxed, as the handshake: a TLS session's state is
                // kilobytes, and inline it would size every plain
                // connection's task as well.
                Box::pin(serve_io(stream, (peer, local), Some(handshake), live, stop)).await;
            }
        }
    }
}

/// Serves HTTP on `io` (plain or decrypted) from `peer` to `local`.
/// The longest an idle connection, when its listener stops, waits for its
/// next request (to answer it with `Connection: close`).
const NEXT_REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn serve_io<T>(
    io: T,
    (peer, local): (SocketAddr, SocketAddr),
    tls: Option<Handshake>,
    live: Arc<LiveHttp>,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = live.load().http.limits.clone();
    let activity = Arc::new(Activity::default());
    let requests = activity.clone();
    let io = Clocked::new(
        io,
        activity.clone(),
        limits.header_timeout,
        limits.keepalive_timeout,
    );
    let client = Arc::new(Client {
        peer,
        local,
        activity,
        live,
        tls,
    });
    let service = service_fn(move |req| {
        let client = client.clone();
        async move {
            let h1 = req.version() < hyper::Version::HTTP_2;
            let mut answer = service::handle(req, &client).await;
            // A stopping listener's HTTP/1 answers say the connection ends
            // (an upgrade's 101 is the start of a tunnel, left alone).
            if h1
                && client.activity.stopping()
                && answer.status() != hyper::StatusCode::SWITCHING_PROTOCOLS
            {
                answer.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(answer)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The socket keeps the head clock (with a 408); hyper's would
        // close kept-alive connections silently.
        .header_read_timeout(None)
        .preserve_header_case(true)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(MAX_LOCAL_RESETS)
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            // HTTP/2 gets its GOAWAY at once: streams in flight finish, new
            // ones go elsewhere. An HTTP/1 connection ends as its client
            // expects: its next answer says `Connection: close` (see the
            // service above; hyper closes after it), so a request the
            // client sends meanwhile is answered rather than met by a closed
            // socket, as HAProxy's `idle-close-on-response` does. One that
            // stays idle (no answer owed, no request within the head timeout
            // and 2 s) is closed.
            requests.stop();
            let deadline = tokio::time::Instant::now() + limits.header_timeout.min(NEXT_REQUEST_WAIT);
            let mark = requests.mark();
            let mut ended = None;
            while ended.is_none()
                && !requests.is_h2()
                && (requests.busy_since(mark) || tokio::time::Instant::now() < deadline)
            {
                tokio::select! {
                    r = conn.as_mut() => ended = Some(r),
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            if let Some(r) = ended {
                r
            } else {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "client connection ended with an error");
    }
}
