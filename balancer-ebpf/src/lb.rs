//! Balancing: the flow table (a placed flow keeps its backend whatever
//! happens to the ring), then for a new flow the VIP lookup and the VIP's
//! Maglev ring, which userspace builds exactly as the proxy plane does, so
//! both planes agree.
//! A flow whose backend has been removed is placed again by the ring.

use balancer_common::{
    Counter, FlowTuple, flow_hash,
    maps::{BackendEntry, FlowValue, VipKey},
};

use crate::{
    maps::{BACKENDS, FLOWS, RING, VIPS},
    stats::count,
};

/// A packet for a VIP with no usable backend; dropped.
pub struct NoBackend;

/// The backend for `flow`, `Ok(None)` when its destination is no VIP. A new
/// flow is recorded only when `record` is set: ICMP errors are routed by
/// the flow they quote but must never create flows (they are easy to forge).
#[inline(always)]
pub fn place(flow: &FlowTuple, record: bool) -> Result<Option<BackendEntry>, NoBackend> {
    // The flow table first: an established flow costs one hash lookup, not
    // two. Only flows of configured VIPs are ever recorded, and userspace
    // purges a VIP's flows when it removes the VIP, so a hit is a VIP hit.
    // SAFETY: the value is copied out at once.
    if let Some(placed) = unsafe { FLOWS.get(flow) } {
        let id = placed.backend;
        if let Some(b) = backend(id) {
            count(Counter::FlowHit);
            return Ok(Some(b));
        }
    }
    let key = VipKey {
        addr: flow.dst,
        port: flow.dst_port,
        protocol: flow.protocol,
        pad: 0,
    };
    // SAFETY: the reference is used before any other map call could change the entry.
    let Some(vip) = (unsafe { VIPS.get(key) }) else {
        return Ok(None);
    };
    if vip.ring_size == 0 {
        return Err(NoBackend);
    }
    let slot = vip.ring_offset + flow_hash(flow, 0) % vip.ring_size;
    let id = *RING.get(slot).ok_or(NoBackend)?;
    let b = backend(id).ok_or(NoBackend)?;
    if record {
        // A full table evicts its least recently used flow; an insert can
        // only fail for lack of memory, and then the ring still places
        // this packet.
        let _ = FLOWS.insert(
            flow,
            FlowValue {
                backend: id,
                pad: 0,
            },
            0,
        );
        count(Counter::FlowNew);
    }
    Ok(Some(b))
}

#[inline(always)]
fn backend(id: u32) -> Option<BackendEntry> {
    BACKENDS.get(id).copied().filter(|b| b.family != 0)
}
