//! The backend-side decapsulator (`balancer decap`): strips the outer IPv4
//! (protocol 4) or IPv6 (next header 41) header of tunnel packets addressed
//! to one of this host's endpoints (`DECAP_ADDRS_V1`) and passes the inner
//! packet, addressed to the VIP the backend holds on loopback, to the stack.
//! Anything else passes untouched. This kernel has no `ipip` module, hence a
//! program of our own; only tunnels to a listed address are unwrapped, so the
//! host does not become an open relay.

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_xdp_adjust_head, macros::map, maps::HashMap,
    programs::XdpContext,
};
use balancer_common::{Counter, FlowTuple};

use crate::{
    diag::report_warn,
    parse::ETH_LEN,
    ptr::{read, write},
    stats::count,
};

/// Local tunnel endpoints: address (16 bytes, IPv4-mapped) -> unused
/// zero. Written by `balancer decap`; only tunnels to these are unwrapped.
#[map(name = "DECAP_ADDRS_V1")]
static DECAP_ADDRS: HashMap<[u8; 16], u32> = HashMap::with_max_entries(64, 0);

const ETH_P_IPV4: [u8; 2] = [0x08, 0x00];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

/// Unwraps one tunnel packet, or passes the frame as it is.
#[inline(always)]
pub fn decap(ctx: &XdpContext) -> u32 {
    let Ok(ether_type) = read::<[u8; 2]>(ctx, 12) else {
        count(Counter::ParseTruncated);
        return xdp_action::XDP_PASS;
    };
    let outer = match ether_type {
        ETH_P_IPV4 => ipv4_outer(ctx),
        ETH_P_IPV6 => ipv6_outer(ctx),
        _ => None,
    };
    let Some(outer) = outer else {
        count(Counter::NotTunnel);
        return xdp_action::XDP_PASS;
    };
    // Move the Ethernet header forward over the outer IP header, then drop
    // the bytes in front of it.
    let Ok(eth) = read::<[u8; ETH_LEN]>(ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    if write(ctx, outer, eth).is_err() {
        return xdp_action::XDP_PASS;
    }
    // `outer` is 20 or 40; the frame is longer than that (checked by the reads).
    let shrink = if outer == 40 { 40 } else { 20 };
    // SAFETY: a plain helper call on this program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, shrink) } != 0 {
        report_warn!(
            ctx,
            "cannot strip the {}-byte tunnel header; packet dropped",
            shrink
        );
        count(Counter::DropEncapFailed);
        return xdp_action::XDP_DROP;
    }
    count(Counter::Decapsulated);
    xdp_action::XDP_PASS
}

/// Outer header length of an IPv4 IP-in-IP packet for a local endpoint.
#[inline(always)]
fn ipv4_outer(ctx: &XdpContext) -> Option<usize> {
    let h: [u8; 20] = read(ctx, ETH_LEN).ok()?;
    // Only option-less outer headers: tunnels never carry options.
    if h[0] != 0x45 || h[9] != 4 {
        return None;
    }
    let dst = FlowTuple::v4_mapped([h[16], h[17], h[18], h[19]]);
    // SAFETY: only presence is checked; the value is not read.
    unsafe { DECAP_ADDRS.get(dst) }?;
    // The inner packet must be IPv4 too: the Ethernet type stays.
    let inner: u8 = read(ctx, ETH_LEN + 20).ok()?;
    (inner >> 4 == 4).then_some(20)
}

/// Outer header length of an IPv6-in-IPv6 packet for a local endpoint.
#[inline(always)]
fn ipv6_outer(ctx: &XdpContext) -> Option<usize> {
    let h: [u8; 40] = read(ctx, ETH_LEN).ok()?;
    if h[0] >> 4 != 6 || h[6] != 41 {
        return None;
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    // SAFETY: only presence is checked; the value is not read.
    unsafe { DECAP_ADDRS.get(dst) }?;
    let inner: u8 = read(ctx, ETH_LEN + 40).ok()?;
    (inner >> 4 == 6).then_some(40)
}
