//! Reading the PROXY header an `accept_from` peer must send first, taking
//! exactly its bytes from the socket: what follows stays unread for the
//! HTTP layer or the splice. The socket is peeked, and only bytes known to
//! belong to the header are consumed, so a header split over several
//! segments is waited for without reading past its end. The caller bounds
//! the wait.

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use tokio::{io::AsyncReadExt as _, net::TcpStream};
use tracing::debug;

use super::{
    Header, V1_MAX, V2_MAX,
    parse::{ParseError, Parsed, parse},
};
use crate::{config::model::Cidr, runtime::ListenerStats};

/// The client a connection from `peer` speaks for: `peer` itself, unless
/// `accept_from` lists it; then the PROXY header it must send first,
/// within `timeout`, names the client (a header naming none leaves
/// `peer`). `None` when a listed peer sends no valid header in time: the
/// caller closes the connection unanswered. Counted in `stats` of
/// `listener`.
pub async fn client_of(
    stream: &mut TcpStream,
    peer: SocketAddr,
    accept_from: &[Cidr],
    timeout: Duration,
    (listener, stats): (&str, &ListenerStats),
) -> Option<SocketAddr> {
    if !accept_from.iter().any(|c| c.contains_ip(peer.ip())) {
        return Some(peer);
    }
    let why = match tokio::time::timeout(timeout, read(stream)).await {
        Ok(Ok(header)) => {
            stats.proxy_headers.fetch_add(1, Ordering::Relaxed);
            return Some(header.addresses.map_or(peer, |a| a.source));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no PROXY header within {timeout:?}"),
    };
    stats.proxy_refused.fetch_add(1, Ordering::Relaxed);
    debug!(%listener, %peer, error = %why, "connection closed: no valid PROXY header");
    None
}

/// Why no header was read.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The bytes are not a valid header.
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The peer closed before a whole header.
    #[error("the peer closed before a whole PROXY header")]
    Closed,
    /// The socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one header from `stream`.
pub async fn read(stream: &mut TcpStream) -> Result<Header, ExpectError> {
    let mut taken: Vec<u8> = Vec::with_capacity(V1_MAX);
    let mut window = vec![0u8; V2_MAX];
    loop {
        let n = stream.peek(&mut window).await?;
        if n == 0 {
            return Err(ExpectError::Closed);
        }
        let seen = [taken.as_slice(), &window[..n]].concat();
        match parse(&seen)? {
            Parsed::Complete { header, len } => {
                // The header's bytes still in the socket, and no more.
                let rest = len - taken.len();
                let mut sink = vec![0u8; rest];
                stream.read_exact(&mut sink).await?;
                return Ok(header);
            }
            Parsed::Incomplete => {
                // All peeked bytes belong to the header: take them, so the
                // next peek waits for new ones.
                let mut sink = vec![0u8; n];
                stream.read_exact(&mut sink).await?;
                taken.extend_from_slice(&sink);
            }
        }
    }
}
