//! The userspace data plane: TCP via splice, UDP via per-client sessions.
//! Sockets are bound here, before anything is served, so an address in use
//! is reported for its listener at start-up.
pub mod pipes;
pub mod splice;
pub mod tcp;
pub mod udp;

use std::{io, net::SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

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

/// Binds and listens on `addr`. Must run inside a tokio runtime.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.listen(BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// Binds a UDP socket on `addr`. Must run inside a tokio runtime.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    UdpSocket::from_std(s.into())
}
