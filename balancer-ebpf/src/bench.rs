//! The benchmark harness (see `balancer_common::bench`): restores the
//! original frame, then tail-calls the program under test, so repeated
//! runs of a program that grows the frame measure the same packet each
//! time.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_store_bytes},
    maps::LruHashMap,
    programs::XdpContext,
};
use balancer_common::bench::{BENCH_FRAME_MAX, BenchWalk};

use crate::{
    maps::{BENCH_FRAME, BENCH_TARGET, BENCH_WALK},
    ptr::{read, write},
};

/// Puts the frame back and runs the target; `XDP_ABORTED` if either fails
/// (the benchmark checks the verdict).
#[inline(always)]
pub fn restore(ctx: &XdpContext) -> u32 {
    let Some(frame) = BENCH_FRAME.get_ptr(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: the map's value, valid for this run.
    let want = unsafe { (*frame).len } as usize;
    if want == 0 || want > BENCH_FRAME_MAX {
        return xdp_action::XDP_ABORTED;
    }
    let (Ok(have), Ok(wanted)) = (
        i32::try_from(ctx.data_end() - ctx.data()),
        i32::try_from(want),
    ) else {
        return xdp_action::XDP_ABORTED;
    };
    let delta = have - wanted;
    // SAFETY: the context is the program's; a positive delta drops bytes
    // from the front, a negative one adds room there.
    if delta != 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return xdp_action::XDP_ABORTED;
    }
    // The verifier needs the length bounded: `want` is 1..=124, masked to
    // the same range.
    let len = (want & 0x7f) as u32;
    // SAFETY: `bytes` holds BENCH_FRAME_MAX bytes and `len` is at most
    // that; the helper checks the packet's bounds itself.
    let stored = unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, (*frame).bytes.as_ptr() as *mut _, len) };
    if stored != 0 {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: slot 0 holds the program under test; on success this does
    // not return.
    unsafe { BENCH_TARGET.tail_call(ctx, 0) };
    xdp_action::XDP_ABORTED
}

/// A floor for any stateful balancer on this machine: one hash-table hit
/// keyed by `N` bytes copied from the frame (16: an IPv4 5-tuple with
/// 4-byte addresses; 40: the flow table's key), then `XDP_TX`. The first
/// run inserts the key.
#[inline(always)]
pub fn lookup<const N: usize>(ctx: &XdpContext, table: &LruHashMap<[u8; N], u32>) -> u32 {
    // From the IP header on: bytes the real program hashes too.
    let Ok(key) = read::<[u8; N]>(ctx, 14) else {
        return xdp_action::XDP_ABORTED;
    };
    if table.get_ptr(key).is_none() {
        let _ = table.insert(key, 1, 0);
    }
    xdp_action::XDP_TX
}

/// Rewrites the frame's IPv4 source address and source port to the next
/// flow of the walk, then runs the target; `XDP_ABORTED` on a frame that
/// is not IPv4 without options (the benchmark builds its own).
#[inline(always)]
pub fn walk(ctx: &XdpContext) -> u32 {
    let Some(state) = BENCH_WALK.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: the map's value, valid for this run; test runs are on one CPU.
    let state = unsafe { &mut *state };
    if state.flows == 0 {
        return xdp_action::XDP_ABORTED;
    }
    let (addr, port) = BenchWalk::source(state.next);
    state.next = (state.next + 1) % state.flows;
    // Ethernet (14) + IPv4 source at 12; the transport header at 34.
    if write(ctx, 14 + 12, addr).is_err() || write(ctx, 34, port.to_be_bytes()).is_err() {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: slot 0 holds the program under test.
    unsafe { BENCH_TARGET.tail_call(ctx, 0) };
    xdp_action::XDP_ABORTED
}
