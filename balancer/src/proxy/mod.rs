//! The userspace data plane: TCP via splice or the sockmap relay, UDP via
//! per-client sessions.
//! Sockets are bound here, before anything is served, so an address in use
//! is reported for its listener at start-up.
pub mod accept;
pub mod pipes;
pub mod sni;
pub mod sockmap;
pub mod splice;
pub mod tcp;
pub mod udp;

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::runtime::failure::{Failure, Step};

/// Listen backlog: bursts of new connections wait in the kernel, not refused.
const BACKLOG: i32 = 4096;

fn socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]:80` must not also claim IPv4, which another listener may own.
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Keepalive probing for proxied connections: a peer that vanished without
/// a FIN or reset is noticed after about two minutes instead of never.
#[must_use]
pub fn keepalive() -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(Duration::from_secs(10))
}

/// Idle time before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_mins(1);

/// Binds and listens on `addr`. Must run inside a tokio runtime.
///
/// `TCP_NODELAY` and keepalive are set here, once: Linux copies them to
/// every accepted socket, which saves four system calls per connection.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_tcp_nodelay(true)?;
    s.set_tcp_keepalive(&keepalive())?;
    s.listen(BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// Binds a UDP socket on `addr`. Must run inside a tokio runtime.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    UdpSocket::from_std(s.into())
}

/// Connects to a TCP backend within `timeout`.
pub async fn connect_tcp(backend: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    match tokio::time::timeout(timeout, TcpStream::connect(backend)).await {
        Ok(r) => r.map_err(|e| Failure::io(Step::Connect, &e)),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// A UDP socket of its own, connected to `backend`: the kernel then matches
/// the backend's answers to it and reports its ICMP errors on it.
pub async fn connect_udp(backend: SocketAddr) -> Result<UdpSocket, Failure> {
    let any: SocketAddr = if backend.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any)
        .await
        .map_err(|e| Failure::io(Step::Bind, &e))?;
    s.connect(backend)
        .await
        .map_err(|e| Failure::io(Step::Connect, &e))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use socket2::SockRef;

    use super::bind_tcp;

    /// The per-connection path relies on accepted sockets inheriting these
    /// options from the listener; if a kernel stopped doing that, this fails.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_and_keepalive() {
        let listener = bind_tcp("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        let s = SockRef::from(&accepted);
        assert!(s.tcp_nodelay().expect("nodelay"));
        assert!(s.keepalive().expect("keepalive"));
        assert_eq!(s.tcp_keepalive_time().expect("idle"), super::KEEPALIVE_IDLE);
    }
}
