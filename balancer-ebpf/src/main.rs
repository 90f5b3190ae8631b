//! The balancer's XDP program. `main.rs` only runs the stages in order; each
//! stage lives in its own module. Today the program parses and counts every
//! frame and passes it on; balancing and the guard build on these stages.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

mod parse;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use balancer_common::Counter;

/// Entry point. Every exit goes through [`stats::verdict`], so each packet is
/// counted once by verdict and once by parse outcome; nothing returns
/// `XDP_ABORTED`.
// The #[xdp] wrapper hands the context over by value.
#[allow(clippy::needless_pass_by_value)]
#[xdp]
pub fn balancer(ctx: XdpContext) -> u32 {
    let outcome = match parse::parse(&ctx) {
        Ok(pkt) => {
            if pkt.vlan {
                stats::count(Counter::Vlan);
            }
            pkt.outcome()
        }
        Err(reason) => reason.counter(),
    };
    stats::count(outcome);
    stats::verdict(xdp_action::XDP_PASS)
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
