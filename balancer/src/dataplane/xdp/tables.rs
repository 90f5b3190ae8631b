//! The userspace half of the XDP balancer: the validated config turned into
//! the contents of the maps (VIPs, Maglev rings, backends, settings). Rings
//! are the same `MaglevTable` the proxy plane uses, so a flow reaches the
//! same backend on either plane. Building is pure; `XdpProgram::write_tables`
//! puts the result into the kernel.

use std::net::{IpAddr, SocketAddr};

use balancer_common::{
    FlowTuple,
    maps::{
        BackendEntry, FAMILY_V4, FAMILY_V6, FORWARD_DSR, FORWARD_IPIP, Settings, VipKey, VipMeta,
    },
};

use crate::{
    config::model::{Forwarding, Listener, Pool, Protocol},
    select::{MaglevTable, Member},
};

/// How the maps should look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// One entry per XDP listener.
    pub vips: Vec<(VipKey, VipMeta)>,
    /// All rings, back to back; `VipMeta::ring_offset` points in here.
    pub ring: Vec<u32>,
    /// Backend id -> how to reach it.
    pub backends: Vec<BackendEntry>,
    /// Program-wide settings.
    pub settings: Settings,
}

/// Tunnel and interface facts the tables need besides the config.
#[derive(Clone, Copy, Debug)]
pub struct Egress {
    /// Forwarding mode.
    pub forwarding: Forwarding,
    /// MAC of the interface the program forwards out of.
    pub mac: [u8; 6],
    /// Largest IP packet the link carries.
    pub mtu: u32,
    /// Outer source for IPv4 tunnels.
    pub ipip_src4: [u8; 4],
    /// Outer source for IPv6 tunnels.
    pub ipip_src6: [u8; 16],
}

/// Why the tables cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// No next-hop MAC is known for a backend.
    #[error("no MAC address known for backend `{0}`; is it reachable on the XDP interface's link?")]
    NoMac(IpAddr),
}

/// 16-byte, IPv4-mapped form of an address, as the program keys it.
#[must_use]
pub fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => FlowTuple::v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl Tables {
    /// Builds the tables for `listeners` (those the XDP plane serves) over
    /// `pools`. `mac_of` gives a backend's next-hop MAC.
    pub fn build(
        listeners: &[&Listener],
        pools: &[Pool],
        egress: &Egress,
        mac_of: &dyn Fn(IpAddr) -> Option<[u8; 6]>,
    ) -> Result<Self, TablesError> {
        let mut backends: Vec<(IpAddr, BackendEntry)> = Vec::new();
        let mut vips = Vec::new();
        let mut ring = Vec::new();
        for (vip_id, l) in listeners.iter().enumerate() {
            let pool = &pools[l.pool];
            // Backend ids are shared across pools: one entry per address.
            let mut ids = Vec::with_capacity(pool.backends.len());
            for b in &pool.backends {
                ids.push(id_of(&mut backends, b.address, mac_of)?);
            }
            let members: Vec<Member> = pool
                .backends
                .iter()
                .map(|b| Member {
                    address: b.address,
                    weight: b.weight,
                })
                .collect();
            let table = MaglevTable::build(&members, pool.maglev_table_size);
            let offset = ring.len() as u32;
            ring.extend(table.slots().iter().map(|&m| ids[m as usize]));
            vips.push((
                VipKey {
                    addr: mapped(l.address.ip()),
                    port: l.address.port(),
                    protocol: match l.protocol {
                        Protocol::Tcp => 6,
                        Protocol::Udp => 17,
                    },
                    pad: 0,
                },
                VipMeta {
                    ring_offset: offset,
                    ring_size: table.slots().len() as u32,
                    flags: 0,
                    vip_id: vip_id as u32,
                },
            ));
        }
        Ok(Self {
            vips,
            ring,
            backends: backends.into_iter().map(|(_, e)| e).collect(),
            settings: Settings {
                forwarding: match egress.forwarding {
                    Forwarding::Dsr => FORWARD_DSR,
                    Forwarding::Ipip => FORWARD_IPIP,
                },
                mtu: egress.mtu,
                ipip_src4: egress.ipip_src4,
                ipip_src6: egress.ipip_src6,
                src_mac: egress.mac,
                pad: [0; 2],
            },
        })
    }
}

fn id_of(
    backends: &mut Vec<(IpAddr, BackendEntry)>,
    address: SocketAddr,
    mac_of: &dyn Fn(IpAddr) -> Option<[u8; 6]>,
) -> Result<u32, TablesError> {
    let ip = address.ip().to_canonical();
    if let Some(i) = backends.iter().position(|(a, _)| *a == ip) {
        return Ok(i as u32);
    }
    let mac = mac_of(ip).ok_or(TablesError::NoMac(ip))?;
    backends.push((
        ip,
        BackendEntry {
            addr: mapped(ip),
            mac,
            family: if ip.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 },
            flags: 0,
        },
    ));
    Ok(backends.len() as u32 - 1)
}
