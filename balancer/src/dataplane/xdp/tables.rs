//! The userspace half of the XDP balancer: the validated config turned into
//! the contents of the maps (VIPs, Maglev rings, backends, settings). Rings
//! are the same `MaglevTable` the proxy plane uses, so a flow reaches the
//! same backend on either plane. Building is pure; `XdpProgram::apply`
//! puts the result into the kernel.

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    net::{IpAddr, SocketAddr},
};

use balancer_common::{
    guard::{GuardSettings, ListKey, Rate},
    maps::{
        BackendEntry, FAMILY_V4, FAMILY_V6, FORWARD_DSR, FORWARD_IPIP, Settings, VipKey, VipMeta,
    },
};

use super::keys::{mapped, vip_key};
use crate::{
    config::model::{Forwarding, Listener, Pool},
    runtime::state::Status,
    select::{MaglevTable, Member},
};

/// How the maps should look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// One entry per XDP listener.
    pub vips: Vec<(VipKey, VipMeta)>,
    /// All rings, back to back; `VipMeta::ring_offset` points in here.
    pub ring: Vec<u32>,
    /// Backend id -> how to reach it, for the backends in use.
    pub backends: Vec<(u32, BackendEntry)>,
    /// Device-map slot -> interface index, for egress interfaces other
    /// than the XDP one.
    pub ports: Vec<(u32, u32)>,
    /// Program-wide settings.
    pub settings: Settings,
    /// The guard's maps; empty until [`super::guard::dress`] fills them.
    pub guard: GuardTables,
}

/// Backend ids that outlive a rebuild. The flow table pins flows to ids,
/// and an id names one pool member (pool, address), not just an address:
/// removing a backend from one pool must move that pool's flows even when the
/// same host still serves another pool. A member keeps its id while it stays
/// configured, and an id is never handed to another member while flows may
/// still point at it.
#[derive(Debug, Default)]
pub struct BackendIds {
    ids: HashMap<(String, SocketAddr), u32>,
    next: u32,
}

impl BackendIds {
    /// The id of `address` in `pool`, allocating a fresh one for a new member.
    fn id(&mut self, pool: &str, address: SocketAddr) -> u32 {
        *self
            .ids
            .entry((pool.to_owned(), address))
            .or_insert_with(|| {
                self.next += 1;
                self.next - 1
            })
    }

    /// Forgets members not in `keep`. Their ids are not reused: a later
    /// member gets a fresh id, so flows still pinned to an old id find an
    /// empty slot and are placed again by the ring.
    fn retain(&mut self, keep: &HashSet<u32>) {
        self.ids.retain(|_, id| keep.contains(id));
    }

    /// Ids handed out so far; the backends map must hold this many.
    #[must_use]
    pub fn allocated(&self) -> u32 {
        self.next
    }

    /// The ids of configured members.
    #[must_use]
    pub fn assigned(&self) -> HashSet<u32> {
        self.ids.values().copied().collect()
    }

    /// The ids the last run gave the members of `listeners`' pools, read
    /// back from the tables it wrote (`old`), so that flows pinned to them
    /// stay with the same members. A VIP's ring slots hold the ids of its
    /// pool's members, and each id's entry holds the member's address; a
    /// member is recognised by address within the pool its VIP serves now.
    /// Ids no member claims are left out: their flows must be placed again.
    #[must_use]
    pub fn recover(old: &Tables, listeners: &[&Listener], pools: &[Pool]) -> Self {
        let mut ids = Self::default();
        let mut highest = None;
        let entries: HashMap<u32, &BackendEntry> =
            old.backends.iter().map(|(id, e)| (*id, e)).collect();
        let mut claimed = HashSet::new();
        for l in listeners {
            let key = vip_key(l.address, l.protocol);
            let Some((_, meta)) = old.vips.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let start = meta.ring_offset as usize;
            let slots = old
                .ring
                .get(start..start.saturating_add(meta.ring_size as usize))
                .unwrap_or(&[]);
            let Some(pool) = l.pool.map(|p| &pools[p]) else {
                continue;
            };
            // A ring repeats each id many times; look each one up once.
            let mut seen = HashSet::new();
            for &id in slots {
                if !seen.insert(id) || claimed.contains(&id) {
                    continue;
                }
                let Some(entry) = entries.get(&id) else {
                    continue;
                };
                let member = pool
                    .backends
                    .iter()
                    .find(|b| mapped(b.address.ip()) == entry.addr);
                if let Some(b) = member {
                    if let Entry::Vacant(slot) = ids.ids.entry((pool.name.clone(), b.address)) {
                        slot.insert(id);
                        claimed.insert(id);
                    }
                    highest = highest.max(Some(id));
                }
            }
        }
        ids.next = highest.map_or(0, |h| h + 1);
        ids
    }
}

/// Tunnel and interface facts the tables need besides the config.
#[derive(Clone, Debug)]
pub struct Egress {
    /// Forwarding mode.
    pub forwarding: Forwarding,
    /// Largest IP packet every egress link carries.
    pub mtu: u32,
    /// Device-map slot -> interface index of the other egress interfaces.
    pub ports: Vec<(u32, u32)>,
    /// Outer source for IPv4 tunnels.
    pub ipip_src4: [u8; 4],
    /// Outer source for IPv6 tunnels.
    pub ipip_src6: [u8; 16],
}

/// How frames reach one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Destination MAC: the backend's, or its router's.
    pub mac: [u8; 6],
    /// Source MAC: the egress interface's.
    pub src_mac: [u8; 6],
    /// 0 for the XDP interface itself, else the egress interface's slot in
    /// [`Egress::ports`].
    pub tx_port: u32,
}

/// Why the tables cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// No next-hop MAC is known for a backend.
    #[error("no MAC address known for backend `{0}`; is it reachable on the XDP interface's link?")]
    NoMac(IpAddr),
    /// A listener the kernel should balance has no pool (only `http`
    /// listeners lack one, and the kernel never serves those).
    #[error("listener `{0}` has no pool for the XDP plane to balance over")]
    NoPool(String),
}

/// What the guard's maps should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardTables {
    /// The settings entry.
    pub settings: GuardSettings,
    /// List entries: (prefix length, key) -> verdict.
    pub lists: Vec<((u32, ListKey), u32)>,
    /// VIP id -> new-flow ceiling, for listeners that have one.
    pub ceilings: Vec<(u32, Rate)>,
    /// VIP id -> listener name, for every listener.
    pub names: Vec<(u32, String)>,
}

impl Tables {
    /// Builds the tables for `listeners` (those the XDP plane serves) over
    /// `pools`. `ids` keeps backend ids stable across rebuilds; `hop_of`
    /// says how to reach a backend.
    pub fn build(
        listeners: &[&Listener],
        pools: &[Pool],
        egress: &Egress,
        ids: &mut BackendIds,
        hop_of: &dyn Fn(IpAddr) -> Option<Hop>,
    ) -> Result<Self, TablesError> {
        Self::build_with(
            listeners,
            pools,
            &|_, _| Status::default(),
            egress,
            ids,
            hop_of,
        )
    }

    /// [`Tables::build`] with each backend in the state `status_of(pool
    /// index, backend index)` says. A backend that takes no new flows is
    /// left out of its ring; one that keeps no flows (down, disabled) also
    /// loses its entry, so its established flows are placed again. Its id
    /// stays reserved, so a backend that flaps does not use up ids.
    pub fn build_with(
        listeners: &[&Listener],
        pools: &[Pool],
        status_of: &dyn Fn(usize, usize) -> Status,
        egress: &Egress,
        ids: &mut BackendIds,
        hop_of: &dyn Fn(IpAddr) -> Option<Hop>,
    ) -> Result<Self, TablesError> {
        let mut backends: Vec<(u32, BackendEntry)> = Vec::new();
        let mut in_use: HashSet<u32> = HashSet::new();
        let mut vips = Vec::new();
        let mut ring = Vec::new();
        for (vip_id, l) in listeners.iter().enumerate() {
            let pool_index = l.pool.ok_or_else(|| TablesError::NoPool(l.name.clone()))?;
            let pool = &pools[pool_index];
            let mut member_ids = Vec::with_capacity(pool.backends.len());
            let mut members = Vec::with_capacity(pool.backends.len());
            for (j, b) in pool.backends.iter().enumerate() {
                let status = status_of(pool_index, j);
                let id = ids.id(&pool.name, b.address);
                // Two listeners may share a pool: one entry per member.
                if in_use.insert(id) && status.keeps_flows() {
                    backends.push((id, entry(b.address.ip().to_canonical(), hop_of)?));
                }
                member_ids.push(id);
                members.push(Member {
                    address: b.address,
                    weight: status.new_flow_weight(b.weight),
                });
            }
            let table = MaglevTable::build(&members, pool.maglev_table_size);
            let offset = ring.len() as u32;
            ring.extend(table.slots().iter().map(|&m| member_ids[m as usize]));
            vips.push((
                vip_key(l.address, l.protocol),
                VipMeta {
                    ring_offset: offset,
                    ring_size: table.slots().len() as u32,
                    flags: 0,
                    vip_id: vip_id as u32,
                },
            ));
        }
        ids.retain(&in_use);
        Ok(Self {
            vips,
            ring,
            backends,
            ports: egress.ports.clone(),
            guard: GuardTables::default(),
            settings: Settings {
                forwarding: match egress.forwarding {
                    Forwarding::Dsr => FORWARD_DSR,
                    Forwarding::Ipip => FORWARD_IPIP,
                },
                mtu: egress.mtu,
                ipip_src4: egress.ipip_src4,
                ipip_src6: egress.ipip_src6,
            },
        })
    }
}

fn entry(ip: IpAddr, hop_of: &dyn Fn(IpAddr) -> Option<Hop>) -> Result<BackendEntry, TablesError> {
    let hop = hop_of(ip).ok_or(TablesError::NoMac(ip))?;
    Ok(BackendEntry {
        addr: mapped(ip),
        mac: hop.mac,
        src_mac: hop.src_mac,
        family: if ip.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 },
        flags: 0,
        pad: [0; 2],
        tx_port: hop.tx_port,
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, fmt::Write as _};

    use super::{BackendIds, Tables};
    use crate::{
        config::{self, Config},
        dataplane::xdp::testkit::{egress, hop_of},
    };

    /// A config with one XDP listener over `backends` (`address weight`).
    fn config_of(backends: &[(&str, u32)]) -> Config {
        let list = backends.iter().fold(String::new(), |mut out, (a, w)| {
            let _ = writeln!(out, "      - {{ address: \"{a}\", weight: {w} }}");
            out
        });
        let yaml = format!(
            "version: 1
listeners:
  - {{ name: web, address: 198.18.0.10:80, protocol: tcp, mode: xdp, pool: web }}
pools:
  - name: web
    algorithm: maglev
    backends:
{list}xdp: {{ interface: eth0, forwarding: dsr }}
"
        );
        config::parse(&yaml, "ring.yaml").expect("config")
    }

    /// The ring as the program reads it, slot by slot, as backend
    /// addresses (ids are this host's own).
    fn ring_by_address(config: &Config, ids: &mut BackendIds) -> Vec<[u8; 16]> {
        let listeners: Vec<_> = config.listeners.iter().collect();
        let t = Tables::build(&listeners, &config.pools, &egress(config), ids, &hop_of)
            .expect("tables");
        let address: HashMap<u32, [u8; 16]> =
            t.backends.iter().map(|(id, b)| (*id, b.addr)).collect();
        t.ring.iter().map(|id| address[id]).collect()
    }

    /// Every balancer host must write the same ring for the same pool, so
    /// a flow that ECMP moves to another host reaches the same backend:
    /// whatever order its file lists the backends in, and whatever ids its
    /// history (restarts, reloads, other pools) gave them.
    #[test]
    fn the_ring_is_the_same_on_every_host_whatever_the_order_and_history() {
        let backends = [
            ("198.18.1.11:80", 100),
            ("198.18.1.12:80", 100),
            ("198.18.1.13:80", 50),
            ("198.18.1.14:80", 100),
        ];
        let first = ring_by_address(&config_of(&backends), &mut BackendIds::default());

        // Another host: the backends in reverse order, and ids handed out
        // first to a different pool (as after earlier configs).
        let mut ids = BackendIds::default();
        let _ = ring_by_address(
            &config_of(&[
                ("198.18.1.14:80", 100),
                ("198.18.1.15:80", 10),
                ("198.18.1.13:80", 1),
            ]),
            &mut ids,
        );
        let mut reversed = backends;
        reversed.reverse();
        let second = ring_by_address(&config_of(&reversed), &mut ids);
        assert_eq!(first.len(), second.len());
        let differ = first.iter().zip(&second).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{differ} of {} slots differ", first.len());

        // A third order, fresh ids again.
        let rotated = [backends[2], backends[0], backends[3], backends[1]];
        assert_eq!(
            ring_by_address(&config_of(&rotated), &mut BackendIds::default()),
            first
        );
    }
}
