//! Per-CPU counters: one slot per [`Counter`], summed by userspace. Per-CPU so
//! the hot path never contends on a shared cache line.

use aya_ebpf::{bindings::xdp_action, macros::map, maps::PerCpuArray};
use balancer_common::Counter;

// The name must equal `balancer_common::stats::STATS_MAP`; the userspace test
// that reads counters looks the map up by that constant and fails otherwise.
#[map(name = "STATS_V3")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Adds one to `counter` on this CPU.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from the map lookup and is valid for this
        // CPU's slot; per-CPU storage means no other writer races with us.
        unsafe { *slot += 1 };
    }
}

/// Counts `action` under its verdict slot and returns it unchanged.
#[inline(always)]
pub fn verdict(action: xdp_action::Type) -> u32 {
    let counter = match action {
        xdp_action::XDP_DROP => Counter::VerdictDrop,
        xdp_action::XDP_TX => Counter::VerdictTx,
        xdp_action::XDP_REDIRECT => Counter::VerdictRedirect,
        _ => Counter::VerdictPass,
    };
    count(counter);
    action
}
