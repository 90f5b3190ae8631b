//! Writing the balancer's maps: from what was written before to what the
//! config says now, changing only what differs, in an order that never lets
//! a packet find a VIP whose ring points at a missing backend.

use aya::maps::{Array, DevMap, HashMap, MapData};
use balancer_common::maps::{
    BACKENDS_MAP, BackendEntry, FLOWS_MAP, FlowKey, FlowValue, RING_MAP, SETTINGS_MAP, Settings,
    TX_PORTS_MAP, VIPS_MAP, VipKey, VipMeta,
};

use super::{XdpError, XdpProgram, program::map_err, tables::Tables};

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
        };
        let old = old.unwrap_or(&none);
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
        let mut backends: Array<&mut MapData, BackendEntry> =
            Array::try_from(self.map_mut(BACKENDS_MAP)?).map_err(err(BACKENDS_MAP))?;
        for (id, _) in old
            .backends
            .iter()
            .filter(|(id, _)| !new.backends.iter().any(|(n, _)| n == id))
        {
            backends
                .set(*id, BackendEntry::EMPTY, 0)
                .map_err(err(BACKENDS_MAP))?;
        }
        Ok(())
    }
}
