//! The guard: what a packet for a listener must pass before it is balanced
//! (XDP listeners) or handed to the kernel (proxy and http listeners). In
//! order, cheapest first: TCP flags, martian sources, allow/deny lists,
//! the source's packet and SYN buckets, the listener's new-flow ceiling.
//! Each refusal is a drop reason, counted globally and per listener by the
//! caller through [`refuse`].
//!
//! Packets of flows already in the flow table skip most of this: they were
//! admitted when the flow was recorded, and userspace purges the flows of
//! sources a list change refuses. Only the flag check and the per-source
//! packet limit (when configured) run for them.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::lpm_trie::Key, programs::XdpContext};
use balancer_common::{
    Counter,
    guard::{
        GUARD_SOURCE_PACKETS, GUARD_SOURCE_SYN, GuardSettings, Limited, ListKey, SourceState,
        VIP_CEILING, list_verdict, source_key,
    },
    maps::VipMeta,
};

use crate::{
    diag::{report_error, report_warn},
    maps::{CEILINGS, GUARD, LIMITED, LISTS, SOURCES},
    parse::{Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    stats::count_guard,
};

/// The guard settings, all zero (nothing on) if the entry is unreadable.
#[inline(always)]
pub fn settings() -> GuardSettings {
    GUARD.get(0).copied().unwrap_or_default()
}

/// Counts `reason` for listener `vip_id` and returns it, for the caller to
/// drop the packet under it.
#[inline(always)]
pub fn refuse(vip_id: u32, reason: Counter) -> Counter {
    count_guard(vip_id, reason);
    reason
}

/// The checks for a packet of a recorded flow of listener `vip_id`.
#[inline(always)]
pub fn established(
    ctx: &XdpContext,
    pkt: &Packet,
    s: &GuardSettings,
    vip_id: u32,
) -> Result<(), Counter> {
    if !flags_ok(pkt) {
        return Err(refuse(vip_id, Counter::GuardBadFlags));
    }
    if s.flags & GUARD_SOURCE_PACKETS != 0 {
        source(ctx, pkt, s, false).map_err(|r| refuse(vip_id, r))?;
    }
    Ok(())
}

/// The checks for any other packet to listener `vip`; `new_flow` says
/// whether it would start a flow (a SYN, or a UDP packet with no flow).
#[inline(always)]
pub fn admit(
    ctx: &XdpContext,
    pkt: &Packet,
    s: &GuardSettings,
    vip: &VipMeta,
    new_flow: bool,
) -> Result<(), Counter> {
    let id = vip.vip_id;
    if !flags_ok(pkt) {
        return Err(refuse(id, Counter::GuardBadFlags));
    }
    if martian(pkt) {
        return Err(refuse(id, Counter::GuardMartian));
    }
    lists(pkt, s, vip).map_err(|r| refuse(id, r))?;
    if s.flags & (GUARD_SOURCE_PACKETS | GUARD_SOURCE_SYN) != 0 {
        source(ctx, pkt, s, new_flow).map_err(|r| refuse(id, r))?;
    }
    if new_flow && vip.flags & VIP_CEILING != 0 {
        ceiling(ctx, id).map_err(|r| refuse(id, r))?;
    }
    Ok(())
}

/// False for flag sets no valid segment carries: SYN with FIN or RST, or
/// none of FIN/SYN/RST/PSH/ACK/URG (a "null" scan).
#[inline(always)]
fn flags_ok(pkt: &Packet) -> bool {
    if !pkt.tcp() {
        return true;
    }
    let f = pkt.tcp_flags;
    let syn = f & TCP_SYN != 0;
    // Only the six classic flags count: ECE and CWR alone are still "none".
    #[expect(
        clippy::verbose_bit_mask,
        reason = "a mask reads as \"no flag\"; trailing zeros do not"
    )]
    let none = f & 0x3f == 0;
    !(none || (syn && f & (TCP_FIN | TCP_RST) != 0))
}

/// Sources no real client sends from: the unspecified address, loopback,
/// multicast, IPv4 broadcast, the destination itself, and IPv4-mapped
/// addresses inside IPv6 (which would pose as IPv4 sources here).
#[inline(always)]
fn martian(pkt: &Packet) -> bool {
    let a = &pkt.flow.src;
    if *a == pkt.flow.dst {
        return true;
    }
    let mapped = a[..10] == [0u8; 10] && a[10] == 0xff && a[11] == 0xff;
    if pkt.ipv6 {
        if mapped || a[0] == 0xff {
            return true;
        }
        // :: and ::1.
        return a[..15] == [0u8; 15] && a[15] <= 1;
    }
    let first = a[12];
    first == 0 || first == 127 || (224..240).contains(&first) || a[12..] == [255u8; 4]
}

/// The allow/deny/martian lists: the listener's own entries and the global
/// ones, decided by [`list_verdict`].
#[inline(always)]
fn lists(pkt: &Packet, s: &GuardSettings, vip: &VipMeta) -> Result<(), Counter> {
    list_verdict(vip.vip_id, vip.flags, s.flags, |scope| lookup(scope, pkt))
}

/// The verdict of the longest entry in `scope` matching the source, or 0.
#[inline(always)]
fn lookup(scope: u32, pkt: &Packet) -> u32 {
    let key = Key::new(
        32 + 128,
        ListKey {
            scope: scope.to_be_bytes(),
            addr: pkt.flow.src,
        },
    );
    LISTS.get(&key).copied().unwrap_or(0)
}

/// The source's buckets: every packet against its packet rate, a new
/// flow also against its SYN rate. A refusal is remembered in the small
/// `LIMITED` map, which userspace lists as the top limited sources.
#[inline(always)]
fn source(
    ctx: &XdpContext,
    pkt: &Packet,
    s: &GuardSettings,
    new_flow: bool,
) -> Result<(), Counter> {
    let key = source_key(&pkt.flow.src, pkt.ipv6);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let verdict = if let Some(state) = SOURCES.get_ptr_mut(key) {
        // SAFETY: the pointer comes from the lookup and stays valid for this
        // program run; a racing CPU may lose an update, which only makes
        // the limit a little more lenient.
        buckets(unsafe { &mut *state }, s, new_flow, now)
    } else {
        let mut state = SourceState::default();
        let verdict = buckets(&mut state, s, new_flow, now);
        // An insert fails only without memory; the packet's verdict stands
        // either way.
        if let Err(e) = SOURCES.insert(key, state, 0) {
            report_warn!(
                ctx,
                "per-source table insert failed (error {}); {:i} is limited without memory of its rate",
                e,
                key
            );
        }
        verdict
    };
    if let Err(reason) = verdict {
        remember(ctx, &key, now);
        return Err(reason);
    }
    Ok(())
}

#[inline(always)]
fn buckets(
    state: &mut SourceState,
    s: &GuardSettings,
    new_flow: bool,
    now: u64,
) -> Result<(), Counter> {
    if s.flags & GUARD_SOURCE_PACKETS != 0 && !s.packets.admit(&mut state.packet_tat, now) {
        return Err(Counter::GuardSourcePackets);
    }
    if new_flow && s.flags & GUARD_SOURCE_SYN != 0 && !s.syn.admit(&mut state.syn_tat, now) {
        return Err(Counter::GuardSourceSyn);
    }
    Ok(())
}

#[inline(always)]
fn remember(ctx: &XdpContext, key: &[u8; 16], now: u64) {
    if let Some(l) = LIMITED.get_ptr_mut(key) {
        // SAFETY: as in `source`.
        let l = unsafe { &mut *l };
        l.drops += 1;
        l.last_ns = now;
        return;
    }
    let inserted = LIMITED.insert(
        key,
        Limited {
            drops: 1,
            last_ns: now,
        },
        0,
    );
    if let Err(e) = inserted {
        report_warn!(
            ctx,
            "limited-source table insert failed (error {}); {:i} is dropped but not listed",
            e,
            *key
        );
    }
}

/// The listener's new-flow ceiling, one bucket shared by all CPUs.
#[inline(always)]
fn ceiling(ctx: &XdpContext, vip_id: u32) -> Result<(), Counter> {
    if within_rate(ctx, vip_id) {
        Ok(())
    } else {
        Err(Counter::GuardListenerSyn)
    }
}

/// Whether one more new flow fits listener `vip_id`'s bucket (its ceiling,
/// or its SYN cookie threshold), taking it if so.
#[inline(always)]
pub fn within_rate(ctx: &XdpContext, vip_id: u32) -> bool {
    let Some(c) = CEILINGS.get_ptr_mut(vip_id) else {
        report_error!(
            ctx,
            "listener {} is beyond the ceilings map; its new flows go unlimited",
            vip_id
        );
        return true;
    };
    // SAFETY: as in `source`.
    let c = unsafe { &mut *c };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let rate = c.rate;
    rate.admit(&mut c.tat, now)
}

/// Whether a TCP packet with no flow is stray: a RST, or a
/// SYN-ACK (backscatter of someone else's spoofed SYNs).
#[inline(always)]
pub fn stray(pkt: &Packet) -> bool {
    let f = pkt.tcp_flags;
    pkt.tcp() && (f & TCP_RST != 0 || f & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK)
}
