//! Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights. The
//! table is built here, in userspace, and is exactly what the XDP program will
//! read: `table[flow_hash % size]`. Each backend's preference list is derived
//! from its address alone, and backends take their turns in the order of
//! their addresses, not of the file, so the table is a function of the set
//! of backends and weights only: every balancer host builds the same one,
//! however its file lists them and whatever it ran before, and a flow
//! moved between hosts by ECMP keeps its backend.

use std::net::SocketAddr;

use balancer_common::{FlowTuple, hash::addr_hash};

use super::{Member, Request, Selector, remix};

const OFFSET_SEED: u32 = 0x6d61_676c; // "magl"
const SKIP_SEED: u32 = 0x6576_3031; // "ev01"

/// A backend's hashing identity: its address IPv4-mapped to 16 bytes, and a
/// seed from its port (two backends on one IP differ by port).
#[must_use]
pub fn backend_identity(address: SocketAddr) -> ([u8; 16], u32) {
    let addr = match address {
        SocketAddr::V4(a) => FlowTuple::v4_mapped(a.ip().octets()),
        SocketAddr::V6(a) => a.ip().octets(),
    };
    (addr, u32::from(address.port()).wrapping_mul(0x9e37_79b1))
}

/// A built lookup table: slot -> member index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
}

impl MaglevTable {
    /// Builds the table. Each member with weight > 0 claims slots in the
    /// order of its own permutation; per round a member claims a slot each
    /// time its accumulated weight reaches the largest weight, so shares are
    /// proportional to weights. Empty when no member has weight.
    #[must_use]
    pub fn build(members: &[Member], size: u32) -> Self {
        let m = u64::from(size);
        let max_weight = members
            .iter()
            .map(|b| u64::from(b.weight))
            .max()
            .unwrap_or(0);
        if max_weight == 0 || m == 0 {
            return Self { slots: Vec::new() };
        }
        let perms: Vec<(u64, u64)> = members
            .iter()
            .map(|b| {
                let (addr, seed) = backend_identity(b.address);
                let offset = u64::from(addr_hash(&addr, seed ^ OFFSET_SEED)) % m;
                let skip = u64::from(addr_hash(&addr, seed ^ SKIP_SEED)) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        // Who claims a contested slot depends on whose turn comes first:
        // turns go by address, so the file's order does not matter.
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| {
            let (addr, _) = backend_identity(members[i].address);
            (addr, members[i].address.port())
        });
        let mut slots = vec![u32::MAX; size as usize];
        let mut next = vec![0u64; members.len()];
        let mut credit = vec![0u64; members.len()];
        let mut filled = 0u64;
        'fill: loop {
            for &i in &order {
                let b = &members[i];
                credit[i] += u64::from(b.weight);
                while credit[i] >= max_weight {
                    credit[i] -= max_weight;
                    let (offset, skip) = perms[i];
                    let mut c = (offset + next[i] * skip) % m;
                    while slots[c as usize] != u32::MAX {
                        next[i] += 1;
                        c = (offset + next[i] * skip) % m;
                    }
                    slots[c as usize] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Self { slots }
    }

    /// The table of a configured pool, with its configured size.
    #[must_use]
    pub fn for_pool(pool: &crate::config::model::Pool) -> Self {
        Self::build(&super::members(pool), pool.maglev_table_size)
    }

    /// Member index for a flow hash, or `None` for an empty table.
    #[must_use]
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[hash as usize % self.slots.len()] as usize)
    }

    /// The slots, in order; what the XDP map writer copies into the ring map.
    #[must_use]
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

/// Maglev selector.
pub struct Maglev {
    table: MaglevTable,
    members: usize,
}

impl Maglev {
    /// Builds from the pool's members.
    pub fn new(members: &[Member], size: u32) -> Self {
        Self {
            table: MaglevTable::build(members, size),
            members: members.len(),
        }
    }
}

impl Selector for Maglev {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        let first = self.table.lookup(req.flow_hash)?;
        if !(req.skip)(first) {
            return Some(first);
        }
        // Retries rehash deterministically, so a retried flow still spreads
        // by the table's weights rather than falling onto one neighbour.
        let mut h = req.flow_hash;
        for _ in 0..self.members * 4 {
            h = remix(h);
            let i = self.table.lookup(h)?;
            if !(req.skip)(i) {
                return Some(i);
            }
        }
        // Almost every member skipped: a scan is bounded by the table and
        // still finds one if any is left.
        self.table
            .slots()
            .iter()
            .map(|&i| i as usize)
            .find(|&i| !(req.skip)(i))
    }
}
