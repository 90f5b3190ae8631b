//! Forwarding to the chosen backend: out of the interface the packet came in
//! on (`XDP_TX`), or redirected through the device map to the interface the
//! backend is reached by.
//!
//! - DSR: only the Ethernet addresses change (destination: the backend's
//!   next hop; source: our interface). The backend holds the VIP on its
//!   loopback and answers the client directly. A VLAN tag is kept.
//! - IP-in-IP: a new outer IPv4 (protocol 4) or IPv6 (next header 41) header
//!   from our tunnel address to the backend, under a new untagged Ethernet
//!   header. The backend's decapsulator delivers the inner packet.
//!
//! Written MTU policy: a packet that would exceed `Settings::mtu` once
//! encapsulated is dropped and counted (`drop_too_big`). The client's TCP
//! stack then lowers its segment size through its own PMTU discovery; set the
//! MTU or the backends' advertised MSS with room for the 20/40-byte header.

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_xdp_adjust_head, programs::XdpContext,
};
use balancer_common::{
    Counter,
    maps::{BackendEntry, FAMILY_V6, FORWARD_IPIP, Settings},
};

use crate::{
    csum,
    diag::report_warn,
    maps::{SETTINGS, TX_PORTS},
    parse::{ETH_LEN, Packet},
    ptr::write,
    stats::count,
};

const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const OUTER_TTL: u8 = 64;

/// Sends the packet to `backend` per the configured forwarding mode; the
/// error is the drop reason.
#[inline(always)]
pub fn forward(ctx: &XdpContext, pkt: &Packet, backend: &BackendEntry) -> Result<u32, Counter> {
    // By reference: the entry stays valid for this run, and a copy would
    // cost stack the program has little of.
    let Some(settings) = SETTINGS.get(0) else {
        return Err(Counter::DropEncapFailed);
    };
    if settings.forwarding == FORWARD_IPIP {
        ipip(ctx, pkt, backend, settings)
    } else {
        dsr(ctx, backend)
    }
}

/// Out of the ingress interface, or of the backend's own egress interface.
#[inline(always)]
fn send(ctx: &XdpContext, backend: &BackendEntry) -> Result<u32, Counter> {
    if backend.tx_port == 0 {
        return Ok(xdp_action::XDP_TX);
    }
    TX_PORTS.redirect(backend.tx_port, 0).map_err(|_| {
        report_warn!(
            ctx,
            "backend {:i} leaves through egress port {}, which has no interface; packet dropped",
            backend.addr,
            backend.tx_port
        );
        Counter::DropNoTxPort
    })
}

#[inline(always)]
fn dsr(ctx: &XdpContext, backend: &BackendEntry) -> Result<u32, Counter> {
    write(ctx, 0, backend.mac).map_err(|_| Counter::DropEncapFailed)?;
    write(ctx, 6, backend.src_mac).map_err(|_| Counter::DropEncapFailed)?;
    let action = send(ctx, backend)?;
    count(Counter::ForwardDsr);
    Ok(action)
}

#[inline(always)]
fn ipip(
    ctx: &XdpContext,
    pkt: &Packet,
    backend: &BackendEntry,
    s: &Settings,
) -> Result<u32, Counter> {
    if (backend.family == FAMILY_V6) != pkt.ipv6 {
        report_warn!(
            ctx,
            "backend {:i} is of the other address family than the packet; it cannot be tunnelled, dropped",
            backend.addr
        );
        return Err(Counter::DropFamilyMismatch);
    }
    let outer = if pkt.ipv6 { IPV6_LEN } else { IPV4_LEN };
    if u32::from(pkt.ip_len) + outer as u32 > s.mtu {
        return Err(Counter::DropTooBig);
    }
    // Room for the outer header; a VLAN tag's 4 bytes are reused, as the
    // tunnelled frame leaves untagged.
    let grow = i32::try_from(ETH_LEN + outer - pkt.l3).map_err(|_| Counter::DropEncapFailed)?;
    // SAFETY: a plain helper call on this program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -grow) } != 0 {
        report_warn!(
            ctx,
            "no headroom for the {}-byte tunnel header; packet dropped",
            grow
        );
        return Err(Counter::DropEncapFailed);
    }
    let fail = |_| Counter::DropEncapFailed;
    write(ctx, 0, backend.mac).map_err(fail)?;
    write(ctx, 6, backend.src_mac).map_err(fail)?;
    if pkt.ipv6 {
        write(ctx, 12, 0x86ddu16.to_be_bytes()).map_err(fail)?;
        // Written in three pieces straight into the frame: a 40-byte
        // header built on the stack first costs stack the program has
        // little of.
        let len = pkt.ip_len.to_be_bytes();
        let fixed = [
            0x60 | (pkt.tos >> 4),
            pkt.tos << 4,
            0,
            0,
            len[0],
            len[1],
            IPPROTO_IPV6,
            OUTER_TTL,
        ];
        write(ctx, ETH_LEN, fixed).map_err(fail)?;
        write(ctx, ETH_LEN + 8, s.ipip_src6).map_err(fail)?;
        write(ctx, ETH_LEN + 24, backend.addr).map_err(fail)?;
    } else {
        write(ctx, 12, 0x0800u16.to_be_bytes()).map_err(fail)?;
        let mut h = [0u8; IPV4_LEN];
        h[0] = 0x45;
        h[1] = pkt.tos;
        h[2..4].copy_from_slice(&(pkt.ip_len + IPV4_LEN as u16).to_be_bytes());
        h[8] = OUTER_TTL;
        h[9] = IPPROTO_IPIP;
        h[12..16].copy_from_slice(&s.ipip_src4);
        h[16..20].copy_from_slice(&backend.addr[12..16]);
        let c = csum::ipv4_header(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        write(ctx, ETH_LEN, h).map_err(fail)?;
    }
    let action = send(ctx, backend)?;
    count(Counter::ForwardIpip);
    Ok(action)
}
