//! How the XDP plane reaches each backend: the egress interface the kernel
//! routes it through (`XDP_TX` for the XDP interface itself, else a
//! device-map slot), and the next hop's MAC there. Resolved once per
//! backend address; a reload resolves only addresses it has not seen, and
//! a next hop whose MAC changes is followed ([`Routes::set_mac`]).

use std::{collections::HashMap, net::IpAddr, time::Duration};

use balancer_common::maps::TX_PORTS;
use tracing::info;

use super::{PlaneError, iface::Interface, neighbor, netlink::Netlink, tables::Hop};
use crate::config::{Config, model::Listener};

/// How long to wait for a backend's next hop to answer address resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Every backend's hop, and the other egress interfaces by slot.
pub struct Routes {
    /// Backend address -> how to reach it.
    pub hops: HashMap<IpAddr, Hop>,
    /// Backend address -> its next hop: interface index and address.
    vias: HashMap<IpAddr, (u32, IpAddr)>,
    /// Egress interfaces besides the XDP one; slot = index + 1.
    others: Vec<Interface>,
    mtu: u32,
}

impl Routes {
    /// How to reach backend `ip`, if it was resolved.
    #[must_use]
    pub fn hop(&self, ip: IpAddr) -> Option<Hop> {
        self.hops.get(&ip).copied()
    }

    /// Resolves every backend behind `listeners`, reusing what `known`
    /// already holds.
    pub fn resolve(
        xdp: &Interface,
        listeners: &[&Listener],
        config: &Config,
        known: Option<&Routes>,
    ) -> Result<Self, PlaneError> {
        let mut hops = HashMap::new();
        let mut vias = HashMap::new();
        let mut netlink = None;
        let mut others: Vec<Interface> = known.map(|k| k.others.clone()).unwrap_or_default();
        let first_new = others.len();
        for l in listeners {
            let backends = l.pool.map_or(&[][..], |p| &config.pools[p].backends[..]);
            for b in backends {
                let ip = b.address.ip().to_canonical();
                if hops.contains_key(&ip) {
                    continue;
                }
                if let Some(k) = known
                    && let (Some(hop), Some(via)) = (k.hops.get(&ip), k.vias.get(&ip))
                {
                    hops.insert(ip, *hop);
                    vias.insert(ip, *via);
                    continue;
                }
                let socket = match &mut netlink {
                    Some(n) => n,
                    None => netlink.insert(Netlink::open().map_err(|e| {
                        neighbor::NeighborError::NoRoute {
                            ip,
                            detail: format!("cannot open a netlink socket: {e}"),
                        }
                    })?),
                };
                let n = neighbor::resolve(socket, ip, RESOLVE_TIMEOUT)?;
                vias.insert(ip, (n.index, n.via));
                let (src_mac, tx_port) = if n.dev == xdp.name {
                    (xdp.mac, 0)
                } else {
                    let i = if let Some(i) = others.iter().position(|o| o.name == n.dev) {
                        i
                    } else {
                        others.push(Interface::read(&n.dev)?);
                        others.len() - 1
                    };
                    let slot = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    if slot >= TX_PORTS {
                        return Err(PlaneError::TooManyInterfaces(TX_PORTS - 1));
                    }
                    (others[i].mac, slot)
                };
                hops.insert(
                    ip,
                    Hop {
                        mac: n.mac,
                        src_mac,
                        tx_port,
                    },
                );
            }
        }
        for o in &others[first_new..] {
            info!(interface = %o.name, "backends routed through this interface are reached by XDP redirect");
        }
        Ok(Self {
            mtu: others.iter().map(|o| o.mtu).fold(xdp.mtu, u32::min),
            others,
            hops,
            vias,
        })
    }

    /// The next hops backends are reached through: interface index and
    /// address.
    pub fn next_hops(&self) -> impl Iterator<Item = (u32, IpAddr)> + '_ {
        self.vias.values().copied()
    }

    /// Next hop `via` on interface `index` answers at `mac` now: every
    /// backend reached through it is sent there. Whether anything changed.
    pub fn set_mac(&mut self, index: u32, via: IpAddr, mac: [u8; 6]) -> bool {
        let mut changed = false;
        for (backend, hop) in &mut self.hops {
            if self.vias.get(backend) == Some(&(index, via)) && hop.mac != mac {
                hop.mac = mac;
                changed = true;
            }
        }
        changed
    }

    /// Device-map slot -> interface index.
    #[must_use]
    pub fn ports(&self) -> Vec<(u32, u32)> {
        self.others
            .iter()
            .zip(1u32..)
            .map(|(o, slot)| (slot, o.index))
            .collect()
    }

    /// The smallest MTU of the egress interfaces.
    #[must_use]
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
}
