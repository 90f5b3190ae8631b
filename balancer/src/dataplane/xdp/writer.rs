//! Writing the balancer's maps: from what was written before to what the
//! config says now, changing only what differs, in an order that never lets
//! a packet find a VIP whose ring points at a missing backend.

use std::collections::HashSet;

use aya::maps::{Array, DevMap, HashMap, LpmTrie, MapData, PerCpuArray, PerCpuValues};
use balancer_common::{
    guard::{
        CEILINGS_MAP, Ceiling, GUARD_MAP, GUARD_STATS_MAP, GuardSettings, LISTS_MAP, ListKey,
        UNKNOWN_VIP, VIP_ADDRESS,
    },
    maps::{
        BACKENDS_MAP, BackendEntry, FLOWS_MAP, FlowKey, FlowValue, RING_MAP, SETTINGS_MAP,
        Settings, TX_PORTS_MAP, VIPS_MAP, VipKey, VipMeta,
    },
    stats::GUARD_REASONS,
};

use super::{
    XdpError, XdpProgram,
    guard::list_entry,
    program::map_err,
    tables::{GuardTables, Tables},
};

impl XdpProgram {
    /// Deletes the flows `doomed` picks from the flow table, in one pass;
    /// returns how many flows are left.
    pub(super) fn purge_flows(
        &mut self,
        doomed: impl Fn(&FlowKey, &FlowValue) -> bool,
    ) -> Result<usize, XdpError> {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(self.map_mut(FLOWS_MAP)?).map_err(map_err(FLOWS_MAP))?;
        let mut kept = 0;
        let mut gone = Vec::new();
        for (k, v) in flows.iter().filter_map(Result::ok) {
            if doomed(&k, &v) {
                gone.push(k);
            } else {
                kept += 1;
            }
        }
        for f in &gone {
            // Already gone (evicted meanwhile) is fine.
            let _ = flows.remove(f);
        }
        Ok(kept)
    }

    /// Moves the maps from `old` (what was written before, `None` when they
    /// are empty) to `new`, writing only what changed. Order matters to
    /// packets in flight: new backends first, then rings, then VIPs; removed
    /// VIPs and backends last, so no VIP ever points at a missing backend. A
    /// removed backend's slot is cleared, and flows pinned to it are placed
    /// again by the ring on their next packet.
    pub fn apply(&mut self, old: Option<&Tables>, new: &Tables) -> Result<(), XdpError> {
        let err = map_err;
        let none = Tables {
            vips: Vec::new(),
            ring: Vec::new(),
            backends: Vec::new(),
            ports: Vec::new(),
            settings: new.settings,
            guard: GuardTables::default(),
        };
        let old = old.unwrap_or(&none);
        // The guard's additions go first and its removals last, so no VIP
        // flag ever names list entries or a ceiling that are not there.
        self.guard_additions(&old.guard, &new.guard)?;
        let mut settings: Array<&mut MapData, Settings> =
            Array::try_from(self.map_mut(SETTINGS_MAP)?).map_err(err(SETTINGS_MAP))?;
        settings
            .set(0, new.settings, 0)
            .map_err(err(SETTINGS_MAP))?;
        let mut ports: DevMap<&mut MapData> =
            DevMap::try_from(self.map_mut(TX_PORTS_MAP)?).map_err(err(TX_PORTS_MAP))?;
        // Ports are written before the backends that name them. A port no
        // longer named stays in the map, unused: no backend points at it.
        for &(slot, ifindex) in new.ports.iter().filter(|p| !old.ports.contains(p)) {
            ports.set(slot, ifindex, None, 0).map_err(XdpError::Ports)?;
        }
        let mut backends: Array<&mut MapData, BackendEntry> =
            Array::try_from(self.map_mut(BACKENDS_MAP)?).map_err(err(BACKENDS_MAP))?;
        for b in new.backends.iter().filter(|b| !old.backends.contains(b)) {
            backends.set(b.0, b.1, 0).map_err(err(BACKENDS_MAP))?;
        }
        let mut ring: Array<&mut MapData, u32> =
            Array::try_from(self.map_mut(RING_MAP)?).map_err(err(RING_MAP))?;
        for (i, id) in new.ring.iter().enumerate() {
            if old.ring.get(i) != Some(id) {
                ring.set(i as u32, id, 0).map_err(err(RING_MAP))?;
            }
        }
        let mut vips: HashMap<&mut MapData, VipKey, VipMeta> =
            HashMap::try_from(self.map_mut(VIPS_MAP)?).map_err(err(VIPS_MAP))?;
        for v in new.vips.iter().filter(|v| !old.vips.contains(v)) {
            vips.insert(v.0, v.1, 0).map_err(err(VIPS_MAP))?;
        }
        let removed: Vec<VipKey> = old
            .vips
            .iter()
            .filter(|(k, _)| !new.vips.iter().any(|(n, _)| n == k))
            .map(|(k, _)| *k)
            .collect();
        for k in &removed {
            vips.remove(k).map_err(err(VIPS_MAP))?;
        }
        // The program looks flows up before VIPs, so a removed VIP's flows
        // must go, or they would still be forwarded.
        if !removed.is_empty() {
            self.purge_flows(|f, _| {
                removed
                    .iter()
                    .any(|v| v.addr == f.dst && v.port == f.dst_port && v.protocol == f.protocol)
            })?;
        }
        self.clear_gone(
            BACKENDS_MAP,
            &old.backends,
            &new.backends,
            BackendEntry::EMPTY,
        )?;
        self.guard_removals(&old.guard, new)
    }

    fn guard_additions(&mut self, old: &GuardTables, new: &GuardTables) -> Result<(), XdpError> {
        let err = map_err;
        let mut lists: LpmTrie<&mut MapData, ListKey, u32> =
            LpmTrie::try_from(self.map_mut(LISTS_MAP)?).map_err(err(LISTS_MAP))?;
        // Lists can hold thousands of entries per scope: diff through sets.
        let had: HashSet<&((u32, ListKey), u32)> = old.lists.iter().collect();
        for e in new.lists.iter().filter(|e| !had.contains(e)) {
            lists
                .insert(&list_entry(e), e.1, 0)
                .map_err(err(LISTS_MAP))?;
        }
        let mut ceilings: Array<&mut MapData, Ceiling> =
            Array::try_from(self.map_mut(CEILINGS_MAP)?).map_err(err(CEILINGS_MAP))?;
        for &(id, rate) in new.ceilings.iter().filter(|c| !old.ceilings.contains(c)) {
            ceilings
                .set(id, Ceiling { rate, tat: 0 }, 0)
                .map_err(err(CEILINGS_MAP))?;
        }
        // An id now owned by another listener starts its counters at zero.
        let mut stats: PerCpuArray<&mut MapData, u64> =
            PerCpuArray::try_from(self.map_mut(GUARD_STATS_MAP)?).map_err(err(GUARD_STATS_MAP))?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Cpus(e))?;
        for (id, _) in new.names.iter().filter(|n| !old.names.contains(n)) {
            for reason in 0..GUARD_REASONS {
                let zero = PerCpuValues::try_from(vec![0u64; cpus]).map_err(XdpError::Cpus)?;
                stats
                    .set(id * GUARD_REASONS + reason, zero, 0)
                    .map_err(err(GUARD_STATS_MAP))?;
            }
        }
        let mut settings: Array<&mut MapData, GuardSettings> =
            Array::try_from(self.map_mut(GUARD_MAP)?).map_err(err(GUARD_MAP))?;
        settings.set(0, new.settings, 0).map_err(err(GUARD_MAP))
    }

    fn guard_removals(&mut self, old: &GuardTables, new: &Tables) -> Result<(), XdpError> {
        let err = map_err;
        let g = &new.guard;
        let mut lists: LpmTrie<&mut MapData, ListKey, u32> =
            LpmTrie::try_from(self.map_mut(LISTS_MAP)?).map_err(err(LISTS_MAP))?;
        let kept: HashSet<&(u32, ListKey)> = g.lists.iter().map(|(k, _)| k).collect();
        for e in old.lists.iter().filter(|(k, _)| !kept.contains(k)) {
            // Already gone is fine.
            let _ = lists.remove(&list_entry(e));
        }
        self.clear_gone(CEILINGS_MAP, &old.ceilings, &g.ceilings, Ceiling::default())?;
        // A recorded flow skips the lists; flows of sources the new lists
        // refuse must go, so their next packet meets the guard.
        if old.lists != g.lists && !g.lists.is_empty() {
            let flags: std::collections::HashMap<u32, u32> = new
                .vips
                .iter()
                .filter(|(_, m)| m.flags & VIP_ADDRESS == 0)
                .map(|(_, m)| (m.vip_id, m.flags))
                .collect();
            self.purge_flows(|k, v| {
                let id = v.vip.checked_sub(1).unwrap_or(UNKNOWN_VIP);
                let vip_flags = flags.get(&id).copied().unwrap_or(0);
                g.refuses(id, vip_flags, &k.src).is_some()
            })?;
        }
        Ok(())
    }

    /// Sets array `map`'s entries of the ids in `old` but not in `new` to
    /// `empty` (an array's entries cannot be deleted).
    fn clear_gone<V: aya::Pod, T, U>(
        &mut self,
        map: &'static str,
        old: &[(u32, T)],
        new: &[(u32, U)],
        empty: V,
    ) -> Result<(), XdpError> {
        let mut array: Array<&mut MapData, V> =
            Array::try_from(self.map_mut(map)?).map_err(map_err(map))?;
        let kept: HashSet<u32> = new.iter().map(|(id, _)| *id).collect();
        for (id, _) in old.iter().filter(|(id, _)| !kept.contains(id)) {
            array.set(*id, empty, 0).map_err(map_err(map))?;
        }
        Ok(())
    }
}
