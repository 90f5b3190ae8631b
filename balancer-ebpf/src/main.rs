//! The balancer's XDP programs. `balancer` runs the stages in order:
//! parse -> flow table -> VIP -> guard -> Maglev ring -> forward (or, for
//! listeners served in userspace, guard -> pass up), each stage in
//! its own module; `balancer_decap` is the backend-side tunnel decapsulator.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

mod bench;
mod cookie;
mod csum;
mod decap;
mod diag;
mod flood;
mod forward;
mod guard;
mod lb;
mod maps;
mod panic;
mod parse;
mod ptr;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use balancer_common::{
    Counter,
    guard::{
        GUARD_DROP_STRAY, GUARD_FLOW_ON_ACK, GUARD_WILDCARD, UNKNOWN_VIP, VIP_COOKIES, VIP_PASS,
    },
};

/// Entry point. Every exit goes through [`stats::verdict`], and every drop
/// has its reason counted; nothing returns `XDP_ABORTED`.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn balancer(ctx: XdpContext) -> u32 {
    match run(&ctx) {
        Ok(action) => stats::verdict(action),
        Err(reason) => {
            stats::count(reason);
            stats::verdict(xdp_action::XDP_DROP)
        }
    }
}

/// Backend-side entry point: unwraps IP-in-IP tunnel packets from the
/// balancer (see [`decap`]).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn balancer_decap(ctx: XdpContext) -> u32 {
    stats::verdict(decap::decap(&ctx))
}

/// The benchmark's yardstick: bounce every frame back with no work at all.
/// `cargo xtask bench xdp` reports the balancer's cost beside this one.
#[xdp]
pub fn bench_bare_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// The benchmark harness: restores the original frame, then tail-calls
/// the program under test (see [`bench`]).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn bench_restore(ctx: XdpContext) -> u32 {
    bench::restore(&ctx)
}

/// The walking harness: the next flow's source on the frame, then the
/// program under test (see [`bench::walk`]).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn bench_walk(ctx: XdpContext) -> u32 {
    bench::walk(&ctx)
}

/// The XDP benchmark's second yardstick: one hash-table hit with a 16-byte
/// key copied from the frame, then `XDP_TX`.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn bench_lookup16_tx(ctx: XdpContext) -> u32 {
    bench::lookup(&ctx, &maps::BENCH_LRU16)
}

/// As [`bench_lookup16_tx`] with a 40-byte key (the flow table's).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn bench_lookup40_tx(ctx: XdpContext) -> u32 {
    bench::lookup(&ctx, &maps::BENCH_LRU40)
}

/// The guard benchmark's yardstick: drop every frame with no work at all.
#[xdp]
pub fn bench_bare_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Tail-called by `balancer` for a SYN beyond its listener's cookie
/// threshold: answers it with a SYN cookie (see [`cookie`]), or passes it
/// up when it cannot.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn balancer_cookie(ctx: XdpContext) -> u32 {
    let action = if let Ok(action) = cookie::answer(&ctx) {
        stats::count(Counter::SynCookie);
        action
    } else {
        stats::count(Counter::PassListener);
        xdp_action::XDP_PASS
    };
    stats::verdict(action)
}

/// Test traffic: a SYN flood from random benchmarking-range sources, for
/// `BPF_PROG_TEST_RUN` live frames only (see [`flood`]).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] wrapper hands the context over by value"
)]
#[xdp]
pub fn test_syn_flood(ctx: XdpContext) -> u32 {
    flood::flood(&ctx)
}

/// The stages; `Err` is a drop reason.
#[inline(always)]
fn run(ctx: &XdpContext) -> Result<u32, Counter> {
    let pkt = match parse::parse(ctx) {
        Ok(pkt) => pkt,
        Err(e) => {
            stats::count(e.counter());
            if let parse::ParseError::Fragment(dst) = e {
                return fragment(&dst);
            }
            return Ok(xdp_action::XDP_PASS);
        }
    };
    if pkt.vlan {
        stats::count(Counter::Vlan);
    }
    stats::count(pkt.outcome());
    if pkt.icmp_too_big {
        return too_big(ctx, &pkt);
    }
    let settings = guard::settings();
    if let Some((backend, vip)) = lb::established(ctx, &pkt.flow) {
        let vip_id = vip.checked_sub(1).unwrap_or(UNKNOWN_VIP);
        guard::established(ctx, &pkt, &settings, vip_id)?;
        stats::count(Counter::FlowHit);
        return forward::forward(ctx, &pkt, backend);
    }
    let Some(vip) = lb::vip(&pkt.flow, settings.flags & GUARD_WILDCARD != 0) else {
        stats::count(Counter::NotVip);
        return Ok(xdp_action::XDP_PASS);
    };
    let passed_up = vip.flags & VIP_PASS != 0;
    // A UDP packet with no flow starts one on an XDP listener; a proxy
    // listener's UDP packets never have flows here, so none counts as new.
    let new_flow = if pkt.tcp() { pkt.syn() } else { !passed_up };
    guard::admit(ctx, &pkt, &settings, &vip, new_flow)?;
    if passed_up {
        // Beyond the listener's cookie threshold, a SYN is answered here:
        // the flood never reaches the socket, and real clients still
        // connect through the cookie.
        if vip.flags & VIP_COOKIES != 0 && pkt.syn() && !guard::within_rate(ctx, vip.vip_id) {
            // SAFETY: the slot holds `balancer_cookie` or nothing; on
            // success this does not return, and on failure the SYN goes up.
            unsafe { maps::COOKIE_PROGS.tail_call(ctx, 0) };
            diag::report_error!(
                ctx,
                "the SYN cookie answerer is missing from its program array; SYN passed up"
            );
        }
        stats::count(Counter::PassListener);
        return Ok(xdp_action::XDP_PASS);
    }
    if settings.flags & GUARD_DROP_STRAY != 0 && guard::stray(&pkt) {
        return Err(guard::refuse(vip.vip_id, Counter::GuardStray));
    }
    // A SYN is balanced by the ring alone and its flow recorded on the
    // next packet (the handshake's ACK): spoofed SYNs never complete a
    // handshake, so a SYN flood cannot fill the table or evict real flows.
    let record = !(pkt.syn() && settings.flags & GUARD_FLOW_ON_ACK != 0);
    let backend = lb::choose(ctx, &pkt.flow, &vip, record).map_err(|_| Counter::DropNoBackend)?;
    if !record {
        stats::count(Counter::FlowSyn);
    }
    forward::forward(ctx, &pkt, backend)
}

/// An ICMP "too big" for a VIP flow goes where the flow it quotes goes; it
/// never creates a flow (it is easy to forge).
#[inline(always)]
fn too_big(ctx: &XdpContext, pkt: &parse::Packet) -> Result<u32, Counter> {
    let backend = if let Some((b, _)) = lb::established(ctx, &pkt.flow) {
        b
    } else {
        let Some(vip) = lb::vip(&pkt.flow, false) else {
            return Ok(xdp_action::XDP_PASS);
        };
        if vip.flags & VIP_PASS != 0 {
            return Ok(xdp_action::XDP_PASS);
        }
        lb::choose(ctx, &pkt.flow, &vip, false).map_err(|_| Counter::DropNoBackend)?
    };
    stats::count(Counter::IcmpTooBig);
    forward::forward(ctx, pkt, backend)
}

/// A non-first fragment carries no ports, so it belongs to no flow: one for
/// an address XDP-served VIPs live on cannot be balanced and is dropped;
/// any other goes to the kernel, which reassembles.
#[inline(always)]
fn fragment(dst: &[u8; 16]) -> Result<u32, Counter> {
    match lb::address(dst) {
        Some(vip) => Err(guard::refuse(vip.vip_id, Counter::GuardFragment)),
        None => Ok(xdp_action::XDP_PASS),
    }
}

/// The crate is only linked for the BPF target; on the host it is type-checked
/// (clippy) and this keeps the bin target well-formed.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
