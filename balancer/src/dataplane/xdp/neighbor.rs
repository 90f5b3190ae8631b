//! Next hops for backends, from the kernel's own routing and neighbour
//! tables (through iproute2, once per backend when tables are built): the
//! interface the kernel routes a backend through, and the MAC to send to
//! there. A backend on a directly attached link is its own next hop; one
//! behind a router is reached through that router's MAC. When the kernel has
//! no entry yet, one empty UDP datagram to the discard port makes it resolve
//! the address (ARP or neighbour discovery), and we wait for the answer.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    process::Command,
    time::{Duration, Instant},
};

/// Why a backend's next hop is unusable.
#[derive(Debug, thiserror::Error)]
pub enum NeighborError {
    /// No route, or iproute2 failed.
    #[error("no route to backend `{ip}`: {detail}")]
    NoRoute {
        /// Backend.
        ip: IpAddr,
        /// What `ip route get` said.
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
    /// The next hop's MAC on it.
    pub mac: [u8; 6],
}

/// The interface and MAC to send `ip`'s packets to.
pub fn resolve(ip: IpAddr, timeout: Duration) -> Result<Neighbor, NeighborError> {
    let (dev, hop) = next_hop(ip)?;
    let deadline = Instant::now() + timeout;
    let mut nudged = false;
    loop {
        if let Some(mac) = lookup(&dev, hop) {
            return Ok(Neighbor { dev, mac });
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

fn next_hop(ip: IpAddr) -> Result<(String, IpAddr), NeighborError> {
    let out = Command::new("ip")
        .args(["-o", "route", "get", &ip.to_string()])
        .output()
        .map_err(|e| NeighborError::NoRoute {
            ip,
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(NeighborError::NoRoute {
            ip,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let (via, dev) = parse_route(&text);
    let dev = dev.ok_or_else(|| NeighborError::NoRoute {
        ip,
        detail: text.trim().to_owned(),
    })?;
    Ok((dev, via.unwrap_or(ip)))
}

/// `via` and `dev` of one `ip -o route get` line.
fn parse_route(line: &str) -> (Option<IpAddr>, Option<String>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    (
        after("via").and_then(|v| v.parse().ok()),
        after("dev").map(|d| (*d).to_owned()),
    )
}

fn lookup(interface: &str, hop: IpAddr) -> Option<[u8; 6]> {
    let out = Command::new("ip")
        .args(["neigh", "show", &hop.to_string(), "dev", interface])
        .output()
        .ok()?;
    parse_neigh(&String::from_utf8_lossy(&out.stdout))
}

/// The `lladdr` of a usable `ip neigh` entry.
fn parse_neigh(text: &str) -> Option<[u8; 6]> {
    let line = text
        .lines()
        .find(|l| !l.contains("FAILED") && !l.contains("INCOMPLETE"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mac = words.get(words.iter().position(|w| *w == "lladdr")? + 1)?;
    let mut out = [0u8; 6];
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        out[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::{parse_neigh, parse_route};

    #[test]
    fn route_lines() {
        let direct = "198.18.0.11 dev eth0 src 198.18.0.2 uid 0 \\    cache ";
        assert_eq!(parse_route(direct), (None, Some("eth0".to_owned())));
        let routed = "198.18.5.1 via 198.18.0.254 dev eth0 src 198.18.0.2 uid 0 \\    cache ";
        assert_eq!(
            parse_route(routed),
            (
                Some("198.18.0.254".parse().expect("ip")),
                Some("eth0".to_owned())
            )
        );
    }

    #[test]
    fn neighbour_lines() {
        assert_eq!(
            parse_neigh("198.18.0.11 lladdr 02:be:00:00:00:0b REACHABLE\n"),
            Some([2, 0xbe, 0, 0, 0, 0x0b])
        );
        assert_eq!(parse_neigh("198.18.0.11 INCOMPLETE\n"), None);
        assert_eq!(
            parse_neigh("fd00::11 lladdr 02:be:00:00:00:0b router STALE\n"),
            Some([2, 0xbe, 0, 0, 0, 0x0b])
        );
        assert_eq!(parse_neigh(""), None);
    }
}
