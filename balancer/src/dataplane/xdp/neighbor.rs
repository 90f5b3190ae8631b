//! Next hops for backends, from the kernel's own routing and neighbour
//! tables, asked over netlink once per backend when tables are built: the
//! interface the kernel routes a backend through, and the MAC to send to
//! there. A backend on a directly attached link is its own next hop; one
//! behind a router is reached through that router's MAC. When the kernel has
//! no entry yet, one empty UDP datagram to the discard port makes it resolve
//! the address (ARP or neighbour discovery), and we wait for the answer.
//! [`super::follow`] keeps the MACs current afterwards.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use super::netlink::Netlink;

/// Why a backend's next hop is unusable.
#[derive(Debug, thiserror::Error)]
pub enum NeighborError {
    /// No route, or netlink failed.
    #[error("no route to backend `{ip}`: {detail}")]
    NoRoute {
        /// Backend.
        ip: IpAddr,
        /// What the kernel said.
        detail: String,
    },
    /// The next hop did not answer ARP / neighbour discovery in time.
    #[error(
        "next hop `{hop}` of backend `{ip}` did not answer address resolution within {waited:?}"
    )]
    Unresolved {
        /// Backend.
        ip: IpAddr,
        /// Next hop asked.
        hop: IpAddr,
        /// How long we waited.
        waited: Duration,
    },
}

/// Where the kernel sends a backend's packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The interface.
    pub dev: String,
    /// Its index.
    pub index: u32,
    /// The next hop: the backend itself, or the gateway to it.
    pub via: IpAddr,
    /// The next hop's MAC on it.
    pub mac: [u8; 6],
}

/// The interface and MAC to send `ip`'s packets to, asked on `netlink`.
pub fn resolve(
    netlink: &mut Netlink,
    ip: IpAddr,
    timeout: Duration,
) -> Result<Neighbor, NeighborError> {
    let no_route = |detail: String| NeighborError::NoRoute { ip, detail };
    let route = netlink.route(ip).map_err(|e| no_route(e.to_string()))?;
    let dev = super::iface::name_of(route.index)
        .ok_or_else(|| no_route(format!("interface {} vanished", route.index)))?;
    let hop = route.via.unwrap_or(ip);
    let deadline = Instant::now() + timeout;
    let mut nudged = false;
    loop {
        if let Some(mac) = netlink
            .neighbour(route.index, hop)
            .map_err(|e| no_route(format!("neighbour table of `{dev}`: {e}")))?
        {
            return Ok(Neighbor {
                dev,
                index: route.index,
                via: hop,
                mac,
            });
        }
        if Instant::now() >= deadline {
            return Err(NeighborError::Unresolved {
                ip,
                hop,
                waited: timeout,
            });
        }
        if !nudged {
            nudge(hop);
            nudged = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One empty datagram to the discard port: the kernel resolves the
/// address to send it. Best effort; the lookup loop reports failure.
fn nudge(hop: IpAddr) {
    let any: SocketAddr = if hop.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    if let Ok(s) = UdpSocket::bind(any) {
        let _ = s.send_to(&[], SocketAddr::new(hop, 9));
    }
}
