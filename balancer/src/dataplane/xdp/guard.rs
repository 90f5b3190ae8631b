//! The guard's share of the maps, built from the validated config: the
//! settings entry, the allow/deny/martian lists, each listener's new-flow
//! ceiling, and the VIP entries that let the program find every listener.
//! Listeners served in userspace get a VIP entry too, flagged
//! [`VIP_PASS`], so their packets are guarded and then passed up.
//!
//! VIP ids are listener indexes in the config, so the per-listener drop
//! counters are found by listener; [`GuardTables::names`] says which
//! listener owns an id, and the writer zeroes an id's counters when its
//! owner changes.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use aya::maps::lpm_trie::Key;
use balancer_common::{
    Counter,
    guard::{
        GUARD_ALLOW_ONLY, GUARD_DROP_STRAY, GUARD_FLOW_ON_ACK, GUARD_LISTS, GUARD_SOURCE_PACKETS,
        GUARD_SOURCE_SYN, GUARD_WILDCARD, GuardSettings, LIST_ALLOW, LIST_DENY, LIST_MARTIAN,
        ListKey, Rate, SCOPE_GLOBAL, VIP_ADDRESS, VIP_ALLOW_ONLY, VIP_CEILING, VIP_COOKIES,
        VIP_LISTS, VIP_PASS, list_verdict,
    },
    maps::{VipKey, VipMeta},
};

use super::{
    cookies::Cookies,
    keys::{mapped, vip_key},
    tables::{GuardTables, Tables},
};
use crate::config::model::{Cidr, Guard, Limit, Listener, StrayTcp};

/// An LPM key as the kernel sees it: prefix length, then [`ListKey`].
pub type ListEntry = Key<ListKey>;

/// The rate of a configured limit.
#[must_use]
pub fn rate(l: &Limit) -> Rate {
    Rate::new(l.rate.get(), l.burst.get())
}

/// Adds the guard to `tables` (built for the `served` listeners of `all`):
/// VIP ids and flags, entries for listeners served in userspace and for
/// the addresses XDP VIPs live on, and [`Tables::guard`]. Listeners served
/// in userspace with a cookie threshold get SYN cookies when `cookies`
/// says this host allows them.
pub fn dress(
    tables: &mut Tables,
    all: &[Listener],
    served: &[usize],
    guard: &Guard,
    cookies: Option<Cookies>,
) {
    let mut g = GuardTables {
        settings: settings(guard, cookies),
        lists: list_entries(SCOPE_GLOBAL, &guard.deny, &guard.allow, &guard.martians),
        ..GuardTables::default()
    };
    let mut wildcard = false;
    let mut vips: Vec<(VipKey, VipMeta)> = Vec::with_capacity(tables.vips.len() + all.len());
    // `tables.vips` holds the served listeners' entries in `served` order.
    let position_of: HashMap<usize, usize> =
        served.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let mut keys: HashSet<VipKey> = HashSet::with_capacity(vips.capacity());
    for (index, l) in all.iter().enumerate() {
        let vip_id = index as u32;
        g.names.push((vip_id, l.name.clone()));
        let mut vip_flags = 0;
        let own = list_entries(vip_id, &l.guard.deny, &l.guard.allow, &[]);
        if !own.is_empty() {
            vip_flags |= VIP_LISTS;
        }
        if !l.guard.allow.is_empty() {
            vip_flags |= VIP_ALLOW_ONLY;
        }
        g.lists.extend(own);
        if let Some(limit) = &l.guard.new_flows {
            vip_flags |= VIP_CEILING;
            g.ceilings.push((vip_id, rate(limit)));
        }
        let key = vip_key(l.address, l.protocol);
        let position = position_of.get(&index).copied();
        if let (Some(limit), None, Some(_)) = (&l.guard.cookies_above, position, cookies) {
            vip_flags |= VIP_COOKIES;
            g.ceilings.push((vip_id, rate(limit)));
        }
        let meta = match position.and_then(|p| tables.vips.get(p)) {
            Some((_, meta)) => VipMeta {
                flags: vip_flags,
                vip_id,
                ..*meta
            },
            None => VipMeta {
                ring_offset: 0,
                ring_size: 0,
                flags: vip_flags | VIP_PASS,
                vip_id,
            },
        };
        keys.insert(key);
        vips.push((key, meta));
        if position.is_some() {
            let addr = VipKey {
                addr: key.addr,
                port: 0,
                protocol: 0,
                pad: 0,
            };
            if keys.insert(addr) {
                vips.push((
                    addr,
                    VipMeta {
                        ring_offset: 0,
                        ring_size: 0,
                        flags: VIP_ADDRESS,
                        vip_id,
                    },
                ));
            }
        } else if l.address.ip().is_unspecified() {
            wildcard = true;
            // A `[::]` socket takes IPv4 too (the Linux default), so it is
            // keyed under both unspecified addresses.
            if l.address.is_ipv6() {
                let v4 = VipKey {
                    addr: mapped(IpAddr::from([0u8; 4])),
                    ..key
                };
                if keys.insert(v4) {
                    vips.push((v4, meta));
                }
            }
        }
    }
    if wildcard {
        g.settings.flags |= GUARD_WILDCARD;
    }
    tables.vips = vips;
    tables.guard = g;
}

/// The settings entry for `guard`, without [`GUARD_WILDCARD`], which
/// depends on the listeners.
fn settings(guard: &Guard, cookies: Option<Cookies>) -> GuardSettings {
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let lists = !(guard.deny.is_empty() && guard.allow.is_empty() && guard.martians.is_empty());
    GuardSettings {
        flags: flag(guard.per_source.syn.is_some(), GUARD_SOURCE_SYN)
            | flag(guard.per_source.packets.is_some(), GUARD_SOURCE_PACKETS)
            | flag(guard.flow_on_ack, GUARD_FLOW_ON_ACK)
            | flag(guard.stray_tcp == StrayTcp::Drop, GUARD_DROP_STRAY)
            | flag(lists, GUARD_LISTS)
            | flag(!guard.allow.is_empty(), GUARD_ALLOW_ONLY)
            | cookies.map_or(0, |c| c.flags),
        cookie: cookies.map(|c| c.cookie).unwrap_or_default(),
        syn: guard.per_source.syn.as_ref().map(rate).unwrap_or_default(),
        packets: guard
            .per_source
            .packets
            .as_ref()
            .map(rate)
            .unwrap_or_default(),
    }
}

fn list_entries(
    scope: u32,
    deny: &[Cidr],
    allow: &[Cidr],
    martians: &[Cidr],
) -> Vec<((u32, ListKey), u32)> {
    let mut out = Vec::with_capacity(deny.len() + allow.len() + martians.len());
    for (list, verdict) in [
        (deny, LIST_DENY),
        (allow, LIST_ALLOW),
        (martians, LIST_MARTIAN),
    ] {
        for c in list {
            let (len, addr) = c.mapped();
            out.push((
                (
                    32 + len,
                    ListKey {
                        scope: scope.to_be_bytes(),
                        addr,
                    },
                ),
                verdict,
            ));
        }
    }
    out
}

impl GuardTables {
    /// The verdict of the longest entry of `scope` matching `src`, or 0.
    fn lookup(&self, scope: u32, src: &[u8; 16]) -> u32 {
        let scope = scope.to_be_bytes();
        let want = u128::from_be_bytes(*src);
        self.lists
            .iter()
            .filter(|((len, k), _)| {
                let bits = len - 32;
                k.scope == scope
                    && (bits == 0 || (u128::from_be_bytes(k.addr) ^ want) >> (128 - bits) == 0)
            })
            .max_by_key(|((len, _), _)| *len)
            .map_or(0, |(_, v)| *v)
    }

    /// Why the lists refuse `src` at the listener with VIP id `vip_id`
    /// (flags `vip_flags`), as the program decides it; `None` admits.
    #[must_use]
    pub fn refuses(&self, vip_id: u32, vip_flags: u32, src: &[u8; 16]) -> Option<Counter> {
        list_verdict(vip_id, vip_flags, self.settings.flags, |scope| {
            self.lookup(scope, src)
        })
        .err()
    }
}

/// The key the program looks a list entry up by.
#[must_use]
pub fn list_entry(&((len, key), _): &((u32, ListKey), u32)) -> ListEntry {
    Key::new(len, key)
}
