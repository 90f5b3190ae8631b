//! The balancer's XDP programs. `balancer` runs the stages in order:
//! parse -> balance (VIP, flow table, Maglev ring) -> forward, each stage in
//! its own module; `balancer_decap` is the backend-side tunnel decapsulator.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

mod csum;
mod decap;
mod forward;
mod lb;
mod maps;
mod parse;
mod ptr;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use balancer_common::Counter;

/// Entry point. Every exit goes through [`stats::verdict`], and every drop
/// has its reason counted; nothing returns `XDP_ABORTED`.
// The #[xdp] wrapper hands the context over by value.
#[allow(clippy::needless_pass_by_value)]
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
// The #[xdp] wrapper hands the context over by value.
#[allow(clippy::needless_pass_by_value)]
#[xdp]
pub fn balancer_decap(ctx: XdpContext) -> u32 {
    stats::verdict(decap::decap(&ctx))
}

/// The benchmark's yardstick: bounce every frame back with no work at all.
/// `cargo xtask bench xdp` reports the balancer's cost beside this one.
// The #[xdp] wrapper hands the context over by value.
#[allow(clippy::needless_pass_by_value)]
#[xdp]
pub fn bench_bare_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// The stages; `Err` is a drop reason.
#[inline(always)]
fn run(ctx: &XdpContext) -> Result<u32, Counter> {
    let pkt = match parse::parse(ctx) {
        Ok(pkt) => pkt,
        Err(e) => {
            stats::count(e.counter());
            return Ok(xdp_action::XDP_PASS);
        }
    };
    if pkt.vlan {
        stats::count(Counter::Vlan);
    }
    stats::count(pkt.outcome());
    let backend = match lb::place(&pkt.flow, !pkt.icmp_too_big) {
        Ok(Some(b)) => b,
        Ok(None) => {
            if !pkt.icmp_too_big {
                stats::count(Counter::NotVip);
            }
            return Ok(xdp_action::XDP_PASS);
        }
        Err(lb::NoBackend) => return Err(Counter::DropNoBackend),
    };
    if pkt.icmp_too_big {
        stats::count(Counter::IcmpTooBig);
    }
    forward::forward(ctx, &pkt, &backend)
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so
    // this is never executed in a loaded program.
    unsafe { core::hint::unreachable_unchecked() }
}

/// The crate is only linked for the BPF target; on the host it is type-checked
/// (clippy) and this keeps the bin target well-formed.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
