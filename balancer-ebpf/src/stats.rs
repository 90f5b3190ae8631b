//! Per-CPU counters: one slot per [`Counter`], summed by userspace. Per-CPU so
//! the hot path never contends on a shared cache line.

use aya_ebpf::{bindings::xdp_action, macros::map, maps::PerCpuArray};
use balancer_common::{
    Counter,
    guard::{GUARD_STATS_SLOTS, MAX_VIP_IDS, UNKNOWN_VIP},
    stats::GUARD_REASONS,
};

/// Verdict and drop-reason counters, per CPU: [`Counter`] -> packets.
/// Written by the program; the daemon sums the CPUs for status and metrics.
// The name must equal `balancer_common::stats::STATS_MAP`; the userspace test
// that reads counters looks the map up by that constant and fails otherwise.
#[map(name = "STATS_V5")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Guard drops per listener, per CPU: `vip_id * GUARD_REASONS + reason` ->
/// drops. Written by the program; the daemon zeroes a reused VIP id's slots.
// The name must equal `balancer_common::guard::GUARD_STATS_MAP`.
#[map(name = "GUARD_STATS_V1")]
static GUARD_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(GUARD_STATS_SLOTS, 0);

/// Adds one to the guard's drop counter `reason` of listener `vip_id`.
#[inline(always)]
pub fn count_guard(vip_id: u32, reason: Counter) {
    let Some(index) = reason.guard_index() else {
        return;
    };
    let vip = if vip_id < MAX_VIP_IDS {
        vip_id
    } else {
        UNKNOWN_VIP
    };
    if let Some(slot) = GUARD_STATS.get_ptr_mut(vip * GUARD_REASONS + index) {
        // SAFETY: as in `count`.
        unsafe { *slot += 1 };
    }
}

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
