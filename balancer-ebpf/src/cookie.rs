//! SYN cookies answered in XDP, for listeners served in userspace whose
//! SYNs arrive faster than their cookie threshold. The SYN is turned
//! around in place into the SYN-ACK the kernel itself would send in cookie
//! mode: its sequence number comes from the kernel's own cookie helper
//! (same secret), and the client's window scale and SACK permission ride
//! in the timestamp's low bits, encoded as the kernel decodes them. The
//! handshake's ACK then goes up to the listening socket, which validates
//! the cookie and builds the connection; no state is kept here and the
//! SYN never costs the kernel an allocation.
//!
//! The kernel accepts a cookie ACK only while the listener has sent
//! cookies itself in the last two minutes; with `net.ipv4.tcp_syncookies
//! = 2` every SYN below the threshold, which still goes up, renews that.

#![expect(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "frame lengths and header fields here are bounded far below every type \
              involved (a frame is at most a page); the helper's result is checked for \
              an error before its low 32 bits are taken as the cookie"
)]

use aya_ebpf::{
    bindings::{iphdr, ipv6hdr, tcphdr, xdp_action},
    helpers::{
        bpf_ktime_get_ns, bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use balancer_common::guard::{
    GUARD_COOKIE_SACK, GUARD_COOKIE_TS, GUARD_COOKIE_WSCALE, GuardSettings, cookie_timestamp,
};

use crate::{
    csum::{fold, sum},
    parse::parse,
    ptr::ptr_at,
};

/// The longest TCP header: the frame is first made exactly this long past
/// the IP header, so one constant bound covers whatever header the cookie
/// helper reads.
const TCP_MAX: usize = 60;
/// The answer's TCP header: 20 bytes and 20 of options (MSS, SACK
/// permitted + timestamps, window scale; NOPs where one is not granted).
const ANSWER: usize = 40;

/// Why no cookie was sent; the SYN goes up to the kernel instead.
pub struct NoCookie;

/// Answers the SYN in `ctx` (the balancer parsed and admitted it) with a
/// cookie SYN-ACK (`XDP_TX`).
#[inline(always)]
pub fn answer(ctx: &XdpContext) -> Result<u32, NoCookie> {
    // Parsed again, as the balancer did: a tail call carries only the frame.
    let pkt = parse(ctx).map_err(|_| NoCookie)?;
    let s = &crate::guard::settings();
    match (pkt.ipv6, pkt.l3) {
        (false, 14) => turn::<14, 20, { 14 + 20 + TCP_MAX }>(ctx, s),
        (false, 18) => turn::<18, 20, { 18 + 20 + TCP_MAX }>(ctx, s),
        (true, 14) => turn::<14, 40, { 14 + 40 + TCP_MAX }>(ctx, s),
        (true, 18) => turn::<18, 40, { 18 + 40 + TCP_MAX }>(ctx, s),
        _ => Err(NoCookie),
    }
}

/// What the client's SYN offered, among the options a cookie can carry.
#[derive(Clone, Copy)]
struct Offered {
    wscale: Option<u8>,
    sack: bool,
    tsval: Option<u32>,
}

/// `L3`: IP header offset; `IP`: its length (20: IPv4 without options,
/// 40: IPv6); `F`: `L3 + IP + TCP_MAX`.
#[inline(always)]
fn turn<const L3: usize, const IP: usize, const F: usize>(
    ctx: &XdpContext,
    s: &GuardSettings,
) -> Result<u32, NoCookie> {
    let t = L3 + IP;
    if IP == 20 {
        // IPv4 options would shift the TCP header; the kernel handles those.
        let v = ptr_at::<u8>(ctx, L3).map_err(|_| NoCookie)?;
        // SAFETY: `ptr_at` checked the bounds.
        if unsafe { *v } != 0x45 {
            return Err(NoCookie);
        }
    }
    let len = ctx.data_end() - ctx.data();
    // SAFETY: adjusting the tail has no preconditions; on failure nothing changed.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, F as i32 - len as i32) } != 0 {
        return Err(NoCookie);
    }
    let frame = ptr_at::<[u8; F]>(ctx, 0).map_err(|_| NoCookie)?;
    // SAFETY: `ptr_at` checked that the whole array lies in the frame; XDP
    // frames are writable.
    let f = unsafe { &mut *frame };
    let th_len = u32::from(f[t + 12] >> 4) * 4;
    if th_len < 20 {
        return Err(NoCookie);
    }
    let offered = options(ctx, t + 20, th_len as usize - 20);
    let th = f[t..].as_mut_ptr();
    let ip = f[L3..].as_mut_ptr();
    // SAFETY: both headers lie inside `f`, and `th_len` bytes from `th`
    // too (th_len <= TCP_MAX); the helpers only read them.
    let r = unsafe {
        if IP == 20 {
            bpf_tcp_raw_gen_syncookie_ipv4(ip.cast::<iphdr>(), th.cast::<tcphdr>(), th_len)
        } else {
            bpf_tcp_raw_gen_syncookie_ipv6(ip.cast::<ipv6hdr>(), th.cast::<tcphdr>(), th_len)
        }
    };
    if r < 0 {
        return Err(NoCookie);
    }
    let client_seq = u32::from_be_bytes([f[t + 4], f[t + 5], f[t + 6], f[t + 7]]);
    let mss = if IP == 20 {
        s.cookie.mss
    } else {
        s.cookie.mss.saturating_sub(20)
    };
    swap::<F>(f, 0, 6, 6);
    if IP == 20 {
        ipv4::<L3, F>(f);
    } else {
        ipv6::<L3, F>(f);
    }
    swap::<F>(f, t, t + 2, 2);
    put32(f, t + 4, r as u32);
    put32(f, t + 8, client_seq.wrapping_add(1));
    f[t + 12] = (ANSWER as u8 / 4) << 4;
    f[t + 13] = 0x12; // SYN + ACK
    // The unscaled window of a SYN-ACK; the client's first flight is ten
    // segments anyway, and the kernel's next ACK tells the real window.
    let window = u32::from(mss).saturating_mul(10).min(65_535) as u16;
    put16(f, t + 14, window);
    put16(f, t + 16, 0);
    put16(f, t + 18, 0);
    write_options(f, t + 20, s, offered, mss);
    let pseudo = if IP == 20 {
        sum(f, L3 + 12, L3 + 20)
    } else {
        sum(f, L3 + 8, L3 + 40)
    };
    let check = fold(pseudo + 6 + ANSWER as u32 + sum(f, t, t + ANSWER));
    put16(f, t + 16, check);
    // SAFETY: as above. A failed shrink leaves trailing bytes the IP
    // length already excludes.
    let _ = unsafe { bpf_xdp_adjust_tail(ctx.ctx, ANSWER as i32 - TCP_MAX as i32) };
    Ok(xdp_action::XDP_TX)
}

/// The options a cookie can carry among the SYN's `len` option bytes at
/// `base`. Bytes are fetched with `bpf_xdp_load_bytes`, whose offset is a
/// plain argument: indexing the packet or the stack by `i` would make the
/// verifier track every value of `i` along every path, which it cannot
/// finish for a loop over forty bytes.
#[inline(always)]
fn options(ctx: &XdpContext, base: usize, len: usize) -> Offered {
    let mut o = Offered {
        wscale: None,
        sack: false,
        tsval: None,
    };
    // Every step moves `i` on by at least one. The volatile read keeps the
    // bound of 40 in the code: the compiler can prove it from `len` and
    // would drop it, but the verifier cannot, and would never see the
    // loop end.
    let mut i: usize = 0;
    loop {
        // SAFETY: reads a local.
        let at = unsafe { core::ptr::read_volatile(&raw const i) };
        if at >= TCP_MAX - 20 || at >= len {
            break;
        }
        let mut head = [0u8; 2];
        if load(ctx, base + i, &mut head).is_err() {
            break;
        }
        let [kind, n] = head;
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        let n = n as usize;
        if n < 2 || i + n > len {
            break;
        }
        match (kind, n) {
            (3, 3) => {
                let mut b = [0u8; 3];
                if load(ctx, base + i, &mut b).is_ok() {
                    o.wscale = Some(b[2]);
                }
            }
            (4, 2) => o.sack = true,
            (8, 10) => {
                let mut b = [0u8; 6];
                if load(ctx, base + i, &mut b).is_ok() {
                    o.tsval = Some(u32::from_be_bytes([b[2], b[3], b[4], b[5]]));
                }
            }
            _ => {}
        }
        i += n;
    }
    o
}

/// Copies `buf.len()` frame bytes from `offset`.
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, offset: usize, buf: &mut [u8; N]) -> Result<(), ()> {
    // SAFETY: the helper writes at most N bytes into `buf` and checks the
    // frame's bounds itself.
    let r =
        unsafe { bpf_xdp_load_bytes(ctx.ctx, offset as u32, buf.as_mut_ptr().cast(), N as u32) };
    if r == 0 { Ok(()) } else { Err(()) }
}

/// The 20 option bytes at `f[at..]`: MSS; SACK permitted and timestamps
/// when granted; window scale when granted. Without a timestamp the
/// kernel cannot recover window scale or SACK from the ACK, so neither is
/// granted then.
#[inline(always)]
fn write_options<const F: usize>(
    f: &mut [u8; F],
    at: usize,
    s: &GuardSettings,
    o: Offered,
    mss: u16,
) {
    let ts = if s.flags & GUARD_COOKIE_TS != 0 {
        o.tsval
    } else {
        None
    };
    let sack = ts.is_some() && o.sack && s.flags & GUARD_COOKIE_SACK != 0;
    let wscale = if ts.is_some() && s.flags & GUARD_COOKIE_WSCALE != 0 {
        o.wscale
    } else {
        None
    };
    if at + 20 > F {
        return;
    }
    // NOPs first, then the options granted over them.
    let mut i = 0;
    while i < 20 {
        if let Some(b) = f.get_mut(at + i) {
            *b = 1;
        }
        i += 1;
    }
    put16(f, at, 0x0204);
    put16(f, at + 2, mss);
    if sack {
        put16(f, at + 4, 0x0402);
    }
    if let Some(echo) = ts {
        // SAFETY: bpf_ktime_get_ns has no preconditions. The kernel's TCP
        // clock is the same monotonic clock in milliseconds.
        let now_ms = (unsafe { bpf_ktime_get_ns() } / 1_000_000) as u32;
        put16(f, at + 6, 0x080a);
        put32(f, at + 8, cookie_timestamp(now_ms, wscale, sack));
        put32(f, at + 12, echo);
    }
    if wscale.is_some() {
        put16(f, at + 17, 0x0303);
        if let Some(b) = f.get_mut(at + 19) {
            *b = s.cookie.wscale;
        }
    }
}

/// Swaps `f[a..a + n]` with `f[b..b + n]`.
#[inline(always)]
fn swap<const F: usize>(f: &mut [u8; F], one: usize, other: usize, len: usize) {
    let mut k = 0;
    while k < len && k < 16 {
        if one + k < F && other + k < F {
            f.swap(one + k, other + k);
        }
        k += 1;
    }
}

#[inline(always)]
fn put16<const F: usize>(f: &mut [u8; F], at: usize, v: u16) {
    if at + 2 <= F {
        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
fn put32<const F: usize>(f: &mut [u8; F], at: usize, v: u32) {
    if at + 4 <= F {
        f[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

/// The IPv4 header of the answer: addresses swapped, 60 bytes long, not
/// fragmented, a fresh TTL, its checksum.
#[inline(always)]
fn ipv4<const L3: usize, const F: usize>(f: &mut [u8; F]) {
    swap::<F>(f, L3 + 12, L3 + 16, 4);
    f[L3 + 1] = 0;
    put16(f, L3 + 2, (20 + ANSWER) as u16);
    put16(f, L3 + 4, 0);
    put16(f, L3 + 6, 0x4000);
    f[L3 + 8] = 64;
    put16(f, L3 + 10, 0);
    let check = fold(sum(f, L3, L3 + 20));
    put16(f, L3 + 10, check);
}

/// The IPv6 header of the answer: addresses swapped, a 40-byte payload, a
/// fresh hop limit.
#[inline(always)]
fn ipv6<const L3: usize, const F: usize>(f: &mut [u8; F]) {
    swap::<F>(f, L3 + 8, L3 + 24, 16);
    put32(f, L3, 0x6000_0000);
    put16(f, L3 + 4, ANSWER as u16);
    f[L3 + 7] = 64;
}
