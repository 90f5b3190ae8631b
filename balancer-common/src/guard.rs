//! Layouts of the guard's maps: allow/deny/martian lists (an LPM trie),
//! per-source and per-listener rate limits, and per-listener drop counters.
//! Rates are kept as GCRA state (see [`Rate`]), one `u64` per bucket, so a
//! bucket is a single word the program can update in place.

use crate::stats::{Counter, GUARD_REASONS};

/// LPM trie: [`ListKey`] (behind the kernel's 4-byte prefix length) ->
/// one of [`LIST_DENY`], [`LIST_ALLOW`], [`LIST_MARTIAN`].
pub const LISTS_MAP: &str = "GUARD_LISTS_V1";
/// LRU hash: source key ([`source_key`]) -> [`SourceState`].
pub const SOURCES_MAP: &str = "GUARD_SOURCES_V1";
/// LRU hash: source key -> [`Limited`], written only when a source is
/// dropped by a per-source limit; small, so userspace can list it.
pub const LIMITED_MAP: &str = "GUARD_LIMITED_V1";
/// Array: VIP id -> [`Ceiling`], the per-listener new-flow ceiling.
pub const CEILINGS_MAP: &str = "GUARD_CEILINGS_V1";
/// One [`GuardSettings`] entry.
pub const GUARD_MAP: &str = "GUARD_V1";
/// Program array: slot 0 holds `balancer_cookie`, which the balancer
/// tail-calls to answer a SYN with a cookie (in its own stack frame: the
/// balancer's leaves too little room for it).
pub const COOKIE_PROGS_MAP: &str = "COOKIE_PROGS_V1";
/// The cookie program's name in the object.
pub const COOKIE_ENTRY: &str = "balancer_cookie";
/// Per-CPU array: `vip_id * GUARD_REASONS + reason` -> drops.
pub const GUARD_STATS_MAP: &str = "GUARD_STATS_V1";

/// VIP ids run from 0 to `MAX_VIP_IDS - 1`; the last one counts drops whose
/// listener is unknown (flows recorded by an older program).
pub const MAX_VIP_IDS: u32 = 1025;
/// The VIP id of "no known listener".
pub const UNKNOWN_VIP: u32 = MAX_VIP_IDS - 1;
/// Slots in [`GUARD_STATS_MAP`].
pub const GUARD_STATS_SLOTS: u32 = MAX_VIP_IDS * GUARD_REASONS;
/// Entries of [`LIMITED_MAP`].
pub const LIMITED_ENTRIES: u32 = 1024;
/// The list scope of entries that apply to every listener.
pub const SCOPE_GLOBAL: u32 = u32::MAX;

/// List verdict: the source is dropped.
pub const LIST_DENY: u32 = 1;
/// List verdict: the source may reach listeners whose allow list applies.
pub const LIST_ALLOW: u32 = 2;
/// List verdict: the source is a martian (dropped, counted as such).
pub const LIST_MARTIAN: u32 = 3;

/// [`crate::maps::VipMeta::flags`]: the listener is served in userspace;
/// the program guards it and passes admitted packets up.
pub const VIP_PASS: u32 = 1;
/// [`crate::maps::VipMeta::flags`]: the listener has its own list entries.
pub const VIP_LISTS: u32 = 1 << 1;
/// [`crate::maps::VipMeta::flags`]: the listener has its own allow list,
/// which replaces the global one: a source must match it.
pub const VIP_ALLOW_ONLY: u32 = 1 << 2;
/// [`crate::maps::VipMeta::flags`]: the listener has a new-flow ceiling.
pub const VIP_CEILING: u32 = 1 << 3;
/// [`crate::maps::VipMeta::flags`]: an address-only entry (port 0,
/// protocol 0) marking an address that XDP-served VIPs live on, for
/// fragments.
pub const VIP_ADDRESS: u32 = 1 << 4;
/// [`crate::maps::VipMeta::flags`]: a listener served in userspace whose
/// SYNs beyond its [`Ceiling`] rate the program answers itself with a SYN
/// cookie (see [`Cookie`]) instead of passing them up.
pub const VIP_COOKIES: u32 = 1 << 5;

/// [`GuardSettings::flags`]: per-source SYN limit on.
pub const GUARD_SOURCE_SYN: u32 = 1;
/// [`GuardSettings::flags`]: per-source packet limit on.
pub const GUARD_SOURCE_PACKETS: u32 = 1 << 1;
/// [`GuardSettings::flags`]: record TCP flows on their first non-SYN
/// packet, not on the SYN.
pub const GUARD_FLOW_ON_ACK: u32 = 1 << 2;
/// [`GuardSettings::flags`]: drop a TCP RST whose flow is not in the table.
pub const GUARD_DROP_STRAY: u32 = 1 << 3;
/// [`GuardSettings::flags`]: some listener is bound to a wildcard address;
/// a VIP miss is looked up again under the unspecified address.
pub const GUARD_WILDCARD: u32 = 1 << 4;
/// [`GuardSettings::flags`]: global list entries exist.
pub const GUARD_LISTS: u32 = 1 << 5;
/// [`GuardSettings::flags`]: a global allow list applies.
pub const GUARD_ALLOW_ONLY: u32 = 1 << 6;
/// [`GuardSettings::flags`]: SYN cookies carry a timestamp option, whose
/// low bits hold the client's window scale and SACK permission (the
/// kernel's encoding; needs `net.ipv4.tcp_timestamps = 2`, no offsets).
pub const GUARD_COOKIE_TS: u32 = 1 << 7;
/// [`GuardSettings::flags`]: SYN cookies may grant SACK (`tcp_sack`).
pub const GUARD_COOKIE_SACK: u32 = 1 << 8;
/// [`GuardSettings::flags`]: SYN cookies may grant window scaling
/// (`tcp_window_scaling`).
pub const GUARD_COOKIE_WSCALE: u32 = 1 << 9;

/// The data part of an LPM key: the scope (a VIP id, or [`SCOPE_GLOBAL`]),
/// big-endian so it is matched bit by bit ahead of the address, and the
/// address (IPv4-mapped for IPv4). Prefix length = 32 + address bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// Scope, big-endian.
    pub scope: [u8; 4],
    /// Address, 16 bytes.
    pub addr: [u8; 16],
}

/// A rate as GCRA sees it: one event per `interval_ns` on average, and up
/// to `burst` events at once, where `tolerance_ns = interval_ns * (burst -
/// 1)`. An all-zero rate means "no limit".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rate {
    /// Nanoseconds per event.
    pub interval_ns: u64,
    /// How far ahead of now the bucket's clock may run.
    pub tolerance_ns: u64,
}

impl Rate {
    /// `rate` events per second with bursts of `burst` (both at least 1).
    #[must_use]
    pub const fn new(rate: u32, burst: u32) -> Self {
        let rate = if rate == 0 { 1 } else { rate as u64 };
        let burst = if burst == 0 { 1 } else { burst as u64 };
        let interval_ns = 1_000_000_000 / rate;
        Self {
            interval_ns,
            tolerance_ns: interval_ns * (burst - 1),
        }
    }

    /// One event at `now_ns` against a bucket whose theoretical arrival
    /// time is `*tat`: admits it and moves `*tat` on, or refuses it and
    /// leaves `*tat` alone. Kernel and tests share this one definition.
    #[inline(always)]
    pub fn admit(&self, tat: &mut u64, now_ns: u64) -> bool {
        let t = if *tat > now_ns { *tat } else { now_ns };
        if t - now_ns > self.tolerance_ns {
            return false;
        }
        *tat = t + self.interval_ns;
        true
    }
}

/// Program-wide guard settings, one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GuardSettings {
    /// `GUARD_*` flags.
    pub flags: u32,
    /// What a SYN cookie answer advertises.
    pub cookie: Cookie,
    /// Per-source SYN rate.
    pub syn: Rate,
    /// Per-source packet rate.
    pub packets: Rate,
}

/// What the program's SYN-ACKs advertise, as the kernel would for the
/// listening socket, so the connection the kernel builds from the cookie
/// matches what the client was told. Four bytes: it took the place of
/// [`GuardSettings`]' padding, so the layout is unchanged.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cookie {
    /// MSS for IPv4 (interface MTU - 40); IPv6 advertises 20 less.
    pub mss: u16,
    /// The receive window scale the kernel will use (from `tcp_rmem`).
    pub wscale: u8,
    /// Explicit padding; zero.
    pub pad: u8,
}

/// TCP timestamp bits that carry SYN cookie options (the kernel's
/// `TSBITS`): window scale in the low 4 (15: none), SACK in bit 4.
pub const COOKIE_TS_BITS: u32 = 6;

/// The timestamp value a cookie SYN-ACK carries at `now_ms`, with the
/// client's window scale (`None`: not offered) and SACK encoded in its low
/// bits, never ahead of `now_ms` (as the kernel's `cookie_init_timestamp`).
#[inline(always)]
#[must_use]
pub const fn cookie_timestamp(now_ms: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let mut options = match wscale {
        Some(w) if w < 15 => w as u32,
        Some(_) => 14,
        None => 0xf,
    };
    if sack {
        options |= 1 << 4;
    }
    let ts = (now_ms >> COOKIE_TS_BITS) << COOKIE_TS_BITS | options;
    if ts > now_ms {
        ts.wrapping_sub(1 << COOKIE_TS_BITS)
    } else {
        ts
    }
}

/// One source's buckets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SourceState {
    /// GCRA clock of its SYNs.
    pub syn_tat: u64,
    /// GCRA clock of its packets.
    pub packet_tat: u64,
}

/// A source a per-source limit has dropped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Limited {
    /// Packets dropped (approximate across CPUs).
    pub drops: u64,
    /// `CLOCK_MONOTONIC` time of the last drop, in nanoseconds.
    pub last_ns: u64,
}

/// A listener's new-flow ceiling and its bucket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ceiling {
    /// The ceiling; all zero: none.
    pub rate: Rate,
    /// GCRA clock.
    pub tat: u64,
}

/// What the allow/deny/martian lists say about a source at a listener with
/// `vip_id` and `vip_flags`, under global `guard_flags`; `lookup(scope)`
/// gives the verdict of the longest entry of that scope matching the
/// source (0: none) and is only asked for scopes that have entries. Any
/// deny or martian match refuses; a matching allow admits only where an
/// allow list applies (the listener's, or else the global one). The
/// program and the daemon's flow purge both decide through this.
#[inline(always)]
pub fn list_verdict(
    vip_id: u32,
    vip_flags: u32,
    guard_flags: u32,
    lookup: impl Fn(u32) -> u32,
) -> Result<(), Counter> {
    let own = vip_flags & VIP_LISTS != 0;
    let global = guard_flags & GUARD_LISTS != 0;
    if !own && !global {
        return Ok(());
    }
    let mine = if own { lookup(vip_id) } else { 0 };
    let all = if global { lookup(SCOPE_GLOBAL) } else { 0 };
    for hit in [mine, all] {
        match hit {
            LIST_DENY => return Err(Counter::GuardDeny),
            LIST_MARTIAN => return Err(Counter::GuardMartian),
            _ => {}
        }
    }
    let allowed = if vip_flags & VIP_ALLOW_ONLY != 0 {
        mine == LIST_ALLOW
    } else if guard_flags & GUARD_ALLOW_ONLY != 0 {
        all == LIST_ALLOW
    } else {
        true
    };
    if allowed {
        Ok(())
    } else {
        Err(Counter::GuardNotAllowed)
    }
}

/// The per-source key of a 16-byte (IPv4-mapped) address: the whole IPv4
/// address, or an IPv6 address's /64, since one IPv6 host owns a /64.
#[inline(always)]
#[must_use]
pub fn source_key(addr: &[u8; 16], ipv6: bool) -> [u8; 16] {
    let mut key = *addr;
    if ipv6 {
        let mut i = 8;
        while i < 16 {
            key[i] = 0;
            i += 1;
        }
    }
    key
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, integers and byte arrays only, every padding
    // byte an explicit field: any bit pattern is valid, none uninitialised.
    unsafe impl aya::Pod for super::ListKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::GuardSettings {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SourceState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Limited {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Ceiling {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::{Ceiling, GuardSettings, Limited, ListKey, Rate, SourceState, source_key};

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(size_of::<ListKey>(), 20);
        assert_eq!(size_of::<GuardSettings>(), 40);
        assert_eq!(size_of::<SourceState>(), 16);
        assert_eq!(size_of::<Limited>(), 16);
        assert_eq!(size_of::<Ceiling>(), 24);
    }

    #[test]
    fn a_burst_is_admitted_whole_and_one_more_is_not() {
        let r = Rate::new(10, 4);
        let mut tat = 0;
        let now = 5_000_000_000;
        for i in 0..4 {
            assert!(r.admit(&mut tat, now), "event {i} of the burst");
        }
        assert!(!r.admit(&mut tat, now), "one over the burst");
        // A refusal leaves the clock alone; one interval later one more fits.
        assert!(r.admit(&mut tat, now + 100_000_000));
        assert!(!r.admit(&mut tat, now + 100_000_000));
    }

    #[test]
    fn the_long_run_rate_is_the_configured_one() {
        let r = Rate::new(1000, 1000);
        let mut tat = 0;
        let mut admitted = 0;
        // 10 s of one event every 100 us: 10x the rate.
        for i in 0..100_000u64 {
            if r.admit(&mut tat, 1_000_000_000 + i * 100_000) {
                admitted += 1;
            }
        }
        assert!((10_000..=11_000).contains(&admitted), "{admitted}");
    }

    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        let a = [0xfd, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9];
        let k = source_key(&a, true);
        assert_eq!(&k[..8], &a[..8]);
        assert_eq!(&k[8..], &[0; 8]);
        assert_eq!(source_key(&a, false), a);
    }
}
