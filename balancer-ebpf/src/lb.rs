//! Balancing: the flow table (a placed flow keeps its backend whatever
//! happens to the ring), then for a new flow the VIP lookup and the VIP's
//! Maglev ring, which userspace builds exactly as the proxy plane does, so
//! both planes agree.
//! A flow whose backend has been removed is placed again by the ring.

use aya_ebpf::{helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext};
use balancer_common::{
    Counter, FlowTuple, flow_hash,
    maps::{BackendEntry, FlowValue, UDP_FLOW_IDLE_NS, UDP_SEEN_EVERY_NS, VipKey, VipMeta},
};

use crate::{
    diag::{report_debug, report_error, report_warn},
    maps::{BACKENDS, FLOWS, RING, VIPS},
    parse::IPPROTO_UDP,
    stats::count,
};

/// A packet for a VIP with no usable backend; dropped.
pub struct NoBackend;

/// The backend of a recorded flow and its listener's VIP id plus one (0:
/// unknown), if the flow is in the table, its backend still exists, and
/// (UDP) it has not been idle for [`UDP_FLOW_IDLE_NS`].
#[inline(always)]
pub fn established(ctx: &XdpContext, flow: &FlowTuple) -> Option<(&'static BackendEntry, u32)> {
    // The flow table first: an established flow costs one hash lookup, not
    // two. Only flows of configured VIPs are ever recorded, and userspace
    // purges a VIP's flows when it removes the VIP, so a hit is a VIP hit.
    let placed = FLOWS.get_ptr_mut(flow)?;
    // SAFETY: the map's value, valid for this program run; the fields are
    // read and written as plain integers (a racing writer on another CPU
    // can only make `seen` a little older or newer).
    let (id, vip) = unsafe {
        if flow.protocol == IPPROTO_UDP {
            // The coarse clock (the last tick's time) is plenty for ages
            // counted in seconds, and costs a memory read where the fine
            // one reads the clock source, which is slow in a VM.
            let now = bpf_ktime_get_coarse_ns();
            let idle = now.wrapping_sub((*placed).seen);
            if idle > UDP_FLOW_IDLE_NS {
                return None;
            }
            if idle > UDP_SEEN_EVERY_NS {
                (*placed).seen = now;
            }
        }
        ((*placed).backend, (*placed).vip)
    };
    let found = backend(id);
    if found.is_none() {
        report_debug!(
            ctx,
            "a flow outlived its backend {}; the ring places it again",
            id
        );
    }
    found.map(|b| (b, vip))
}

/// The listener `flow` is addressed to. With `wildcard`, a miss is looked up
/// again under the unspecified address of its family, where listeners
/// bound to all addresses are keyed.
#[inline(always)]
pub fn vip(flow: &FlowTuple, wildcard: bool) -> Option<VipMeta> {
    let exact = lookup(flow.dst, flow.dst_port, flow.protocol);
    if exact.is_some() || !wildcard {
        return exact;
    }
    let unspecified4 = FlowTuple::v4_mapped([0; 4]);
    let any = if flow.dst[..12] == unspecified4[..12] {
        unspecified4
    } else {
        [0; 16]
    };
    lookup(any, flow.dst_port, flow.protocol)
}

/// The meta of an address-only entry: some XDP-served VIP lives on `addr`.
#[inline(always)]
pub fn address(addr: &[u8; 16]) -> Option<VipMeta> {
    lookup(*addr, 0, 0)
}

#[inline(always)]
fn lookup(addr: [u8; 16], port: u16, protocol: u8) -> Option<VipMeta> {
    let key = VipKey {
        addr,
        port,
        protocol,
        pad: 0,
    };
    // SAFETY: the value is copied out at once.
    unsafe { VIPS.get(key) }.copied()
}

/// Places a flow of `vip` by its Maglev ring, recording it in the flow table
/// when `record` is set.
#[inline(always)]
pub fn choose(
    ctx: &XdpContext,
    flow: &FlowTuple,
    vip: &VipMeta,
    record: bool,
) -> Result<&'static BackendEntry, NoBackend> {
    if vip.ring_size == 0 {
        return Err(NoBackend);
    }
    let slot = vip.ring_offset + flow_hash(flow, 0) % vip.ring_size;
    let Some(id) = RING.get(slot).copied() else {
        report_error!(
            ctx,
            "listener {} has ring slot {} beyond the ring map; packet dropped",
            vip.vip_id,
            slot
        );
        return Err(NoBackend);
    };
    let Some(b) = backend(id) else {
        // The daemon writes a backend before any ring names it and clears
        // it only after no ring does.
        report_error!(
            ctx,
            "listener {} ring slot {} names backend {}, which is empty; packet dropped",
            vip.vip_id,
            slot,
            id
        );
        return Err(NoBackend);
    };
    if record {
        // A full table evicts its least recently used flow; an insert can
        // only fail for lack of memory, and then the ring still places
        // this packet.
        let inserted = FLOWS.insert(
            flow,
            FlowValue {
                backend: id,
                vip: vip.vip_id + 1,
                // SAFETY: a helper without arguments. The same clock as
                // the age check in `established`.
                seen: unsafe { bpf_ktime_get_coarse_ns() },
            },
            0,
        );
        if let Err(e) = inserted {
            report_warn!(
                ctx,
                "flow table insert failed (error {}); the ring places this flow on every packet",
                e
            );
        }
        count(Counter::FlowNew);
    }
    Ok(b)
}

#[inline(always)]
fn backend(id: u32) -> Option<&'static BackendEntry> {
    // By reference: the entry stays valid for this run, and a copy costs
    // stack the program has little of. A rewrite racing this packet can
    // now be seen half-done anywhere between here and the frame's last
    // write, where a copy narrowed that to the copy itself. The daemon
    // rewrites a live entry when a next hop's MAC changes and clears one
    // when its backend goes (after no ring names it; flows still on it are
    // placed again): a packet racing either may leave with a torn entry,
    // as one racing the copy could, only over a few more instructions.
    BACKENDS.get(id).filter(|b| b.family != 0)
}
