//! A SYN-flood source for the guard's tests and benchmark, never attached:
//! run through `BPF_PROG_TEST_RUN` in live-frames mode, it takes a template
//! SYN (Ethernet, IPv4 or IPv6 without options, TCP without options), gives
//! each copy a random source address and port from the benchmarking ranges
//! (`198.18.128.0/17`, `fd00::/8`), fixes the checksums and transmits it. The
//! sources are fixed to those ranges here, in the kernel, so no caller can
//! aim it at anything but test addresses' owners.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_get_prandom_u32, programs::XdpContext};

use crate::{
    csum::{fold, sum},
    ptr::ptr_at,
};

const V4_LEN: usize = 14 + 20 + 20;
const V6_LEN: usize = 14 + 40 + 20;

/// One template frame, randomised and sent back out (`XDP_TX`).
#[inline(always)]
pub fn flood(ctx: &XdpContext) -> u32 {
    let Ok(eth) = ptr_at::<[u8; 14]>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: `ptr_at` checked the bounds.
    let ether_type = unsafe { [(*eth)[12], (*eth)[13]] };
    match u16::from_be_bytes(ether_type) {
        0x0800 => v4(ctx),
        0x86dd => v6(ctx),
        _ => xdp_action::XDP_DROP,
    }
}

fn random() -> u32 {
    // SAFETY: no preconditions.
    unsafe { bpf_get_prandom_u32() }
}

#[inline(always)]
fn v4(ctx: &XdpContext) -> u32 {
    let Ok(p) = ptr_at::<[u8; V4_LEN]>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: `ptr_at` checked the bounds; XDP frames are writable.
    let f = unsafe { &mut *p };
    let r = random();
    f[26] = 198;
    f[27] = 18;
    f[28] = 0x80 | ((r >> 8) as u8 & 0x7f);
    f[29] = r as u8;
    let port = ((r >> 16) as u16) | 1024;
    f[34] = (port >> 8) as u8;
    f[35] = port as u8;
    f[24] = 0;
    f[25] = 0;
    let ip = fold(sum(f, 14, 34));
    f[24] = (ip >> 8) as u8;
    f[25] = ip as u8;
    f[50] = 0;
    f[51] = 0;
    let tcp = fold(sum(f, 26, 34) + 6 + 20 + sum(f, 34, 54));
    f[50] = (tcp >> 8) as u8;
    f[51] = tcp as u8;
    xdp_action::XDP_TX
}

#[inline(always)]
fn v6(ctx: &XdpContext) -> u32 {
    let Ok(frame) = ptr_at::<[u8; V6_LEN]>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: as in `v4`.
    let f = unsafe { &mut *frame };
    f[22] = 0xfd;
    let mut at = 23;
    while at < 38 {
        let bits = random();
        let mut byte = 0;
        while byte < 4 && at < 38 {
            f[at] = (bits >> (8 * byte)) as u8;
            at += 1;
            byte += 1;
        }
    }
    let port = (random() as u16) | 1024;
    f[54] = (port >> 8) as u8;
    f[55] = port as u8;
    f[70] = 0;
    f[71] = 0;
    let tcp = fold(sum(f, 22, 54) + 6 + 20 + sum(f, 54, 74));
    f[70] = (tcp >> 8) as u8;
    f[71] = tcp as u8;
    xdp_action::XDP_TX
}
