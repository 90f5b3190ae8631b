//! TLS passthrough routing: a TCP listener with `routes` reads each
//! connection's ClientHello ([`crate::tls::peek`]) and sends it to the
//! pool of the first route whose `sni` matches, in file order; no SNI, or
//! no match, goes to the listener's own pool. The ClientHello's bytes go
//! to the backend first, then the splice relays the rest as for any TCP
//! connection: TLS is never terminated here.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use tokio::net::TcpStream;
use tracing::debug;

use crate::{
    config::http::HostMatch,
    runtime::{ListenerStats, LivePool, events::Passive},
    tls::peek::{PeekError, read_hello},
};

/// One SNI route as the proxy runs it.
pub struct SniTarget {
    /// The route's name, for logs.
    pub name: String,
    /// The server names it takes.
    pub sni: HostMatch,
    /// Where they go.
    pub pool: Arc<LivePool>,
    /// Where that pool's connect failures go.
    pub passive: Passive,
}

/// A connection's ClientHello and the route it matched.
pub struct Routed<'a> {
    /// The bytes read, to be sent to the backend first.
    pub hello: Vec<u8>,
    /// The server name asked for.
    pub sni: Option<String>,
    /// The matching route; `None`: the listener's pool.
    pub route: Option<&'a SniTarget>,
}

/// Reads the ClientHello of `client` within `timeout` and picks its route
/// among `routes`. `None` when the client sends no ClientHello (plaintext,
/// garbage, a close or silence): the caller closes the connection, which
/// is counted in `stats` and logged at debug level under `listener`.
pub async fn route<'a>(
    client: &mut TcpStream,
    peer: SocketAddr,
    routes: &'a [SniTarget],
    timeout: Duration,
    (listener, stats): (&str, &ListenerStats),
) -> Option<Routed<'a>> {
    match read_hello(client, timeout).await {
        Ok(hello) => {
            stats.tls_hellos.fetch_add(1, Ordering::Relaxed);
            let route = hello
                .sni
                .as_deref()
                .and_then(|name| routes.iter().find(|r| r.sni.matches(name)));
            if hello.sni.is_none() {
                stats.tls_hellos_without_sni.fetch_add(1, Ordering::Relaxed);
            }
            debug!(%listener, %peer, sni = hello.sni.as_deref().unwrap_or("-"),
                route = route.map_or("-", |r| r.name.as_str()), "ClientHello routed");
            Some(Routed {
                hello: hello.bytes,
                sni: hello.sni,
                route,
            })
        }
        Err(e) => {
            let counter = if matches!(e, PeekError::Timeout(_)) {
                &stats.tls_hello_timeouts
            } else {
                &stats.tls_hello_refused
            };
            counter.fetch_add(1, Ordering::Relaxed);
            debug!(%listener, %peer, error = %e, "connection closed: no ClientHello to route");
            None
        }
    }
}
