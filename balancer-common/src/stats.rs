//! Counter slots of the per-CPU statistics array. Every verdict the XDP
//! program returns and every parse outcome it reaches increments exactly one
//! slot of each group, so the groups each sum to the number of packets seen.

/// Name of the per-CPU counter array. The suffix is the layout version: a
/// change to [`Counter`] that moves a slot bumps it, so a pinned map of the old
/// layout is never misread.
pub const STATS_MAP: &str = "STATS_V5";

/// Number of guard drop reasons ([`Counter::GUARD`]).
pub const GUARD_REASONS: u32 = 9;

/// One slot in the per-CPU counter array, indexed by the discriminant.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Verdict: `XDP_PASS`.
    VerdictPass = 0,
    /// Verdict: `XDP_DROP`.
    VerdictDrop = 1,
    /// Verdict: `XDP_TX`.
    VerdictTx = 2,
    /// Verdict: `XDP_REDIRECT`.
    VerdictRedirect = 3,
    /// Parse outcome: frame shorter than the header it claims to carry.
    ParseTruncated = 4,
    /// Parse outcome: not IPv4 or IPv6 (ARP, LLDP, ...).
    ParseNonIp = 5,
    /// Parse outcome: IPv4 or IPv6 with a transport other than TCP or UDP.
    ParseOtherL4 = 6,
    /// Parse outcome: TCP over IPv4.
    ParseTcp4 = 7,
    /// Parse outcome: UDP over IPv4.
    ParseUdp4 = 8,
    /// Parse outcome: TCP over IPv6.
    ParseTcp6 = 9,
    /// Parse outcome: UDP over IPv6.
    ParseUdp6 = 10,
    /// Parse outcome: an IPv4 fragment other than the first (no L4 header).
    ParseFragment = 11,
    /// Parse outcome: IPv6 with extension headers before L4, or a malformed
    /// IPv4 header length; passed to the kernel, which knows how to handle it.
    ParseUnsupported = 12,
    /// Any frame that carried an 802.1Q tag (counted in addition to its outcome).
    Vlan = 13,
    /// Balancing: TCP/UDP packet not addressed to a VIP; passed untouched.
    NotVip = 14,
    /// Balancing: packet of a flow already in the flow table.
    FlowHit = 15,
    /// Balancing: new flow, placed by the Maglev ring and recorded.
    FlowNew = 16,
    /// Balancing: ICMP "too big" for a VIP flow, routed to that flow's backend.
    IcmpTooBig = 17,
    /// Forwarding: sent on with rewritten MACs (DSR).
    ForwardDsr = 18,
    /// Forwarding: sent on inside an IP-in-IP tunnel.
    ForwardIpip = 19,
    /// Drop: the VIP has no backend (empty ring or unknown backend id).
    DropNoBackend = 20,
    /// Drop: making room for the tunnel header failed.
    DropEncapFailed = 21,
    /// Drop: the packet would exceed the MTU once encapsulated.
    DropTooBig = 22,
    /// Drop: backend and VIP differ in address family under IP-in-IP.
    DropFamilyMismatch = 23,
    /// Drop: the backend's egress interface is gone from the device map.
    DropNoTxPort = 24,
    /// Guard drop: the source is on a deny list.
    GuardDeny = 25,
    /// Guard drop: an allow list applies and the source is not on it.
    GuardNotAllowed = 26,
    /// Guard drop: a source no real client has (unspecified, loopback,
    /// multicast, broadcast, the VIP itself, IPv4-mapped in IPv6, or on
    /// `guard.martians`).
    GuardMartian = 27,
    /// Guard drop: TCP flags no valid segment carries (SYN+FIN, SYN+RST, none).
    GuardBadFlags = 28,
    /// Guard drop: a non-first IPv4 fragment for an XDP-served VIP address,
    /// which carries no ports and so belongs to no flow.
    GuardFragment = 29,
    /// Guard drop: a TCP RST for a flow not in the table (policy `stray_tcp`).
    GuardStray = 30,
    /// Guard drop: the source is over its SYN (new flow) rate.
    GuardSourceSyn = 31,
    /// Guard drop: the source is over its packet rate.
    GuardSourcePackets = 32,
    /// Guard drop: the listener is over its new-flow ceiling.
    GuardListenerSyn = 33,
    /// Guard: a packet for a proxy or http listener, passed up to the kernel
    /// after the guard admitted it.
    PassListener = 34,
    /// Balancing: a TCP SYN placed by the Maglev ring and not recorded (the
    /// flow is recorded on its first non-SYN packet; `guard.flow_on_ack`).
    FlowSyn = 35,
    /// Decapsulator: an IP-in-IP packet for a local endpoint, unwrapped.
    Decapsulated = 36,
    /// Decapsulator: not a tunnel packet for us; passed untouched.
    NotTunnel = 37,
    /// Guard: a SYN to a listener served in userspace, beyond its cookie
    /// threshold, answered by the program with a SYN cookie (`XDP_TX`).
    SynCookie = 38,
}

impl Counter {
    /// Number of slots; the size of the counter array.
    pub const COUNT: u32 = 39;

    /// Every counter in slot order.
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::VerdictPass,
        Counter::VerdictDrop,
        Counter::VerdictTx,
        Counter::VerdictRedirect,
        Counter::ParseTruncated,
        Counter::ParseNonIp,
        Counter::ParseOtherL4,
        Counter::ParseTcp4,
        Counter::ParseUdp4,
        Counter::ParseTcp6,
        Counter::ParseUdp6,
        Counter::ParseFragment,
        Counter::ParseUnsupported,
        Counter::Vlan,
        Counter::NotVip,
        Counter::FlowHit,
        Counter::FlowNew,
        Counter::IcmpTooBig,
        Counter::ForwardDsr,
        Counter::ForwardIpip,
        Counter::DropNoBackend,
        Counter::DropEncapFailed,
        Counter::DropTooBig,
        Counter::DropFamilyMismatch,
        Counter::DropNoTxPort,
        Counter::GuardDeny,
        Counter::GuardNotAllowed,
        Counter::GuardMartian,
        Counter::GuardBadFlags,
        Counter::GuardFragment,
        Counter::GuardStray,
        Counter::GuardSourceSyn,
        Counter::GuardSourcePackets,
        Counter::GuardListenerSyn,
        Counter::PassListener,
        Counter::FlowSyn,
        Counter::Decapsulated,
        Counter::NotTunnel,
        Counter::SynCookie,
    ];

    /// Whether this slot is a parse outcome: every packet lands in exactly
    /// one of them. They occupy the slots from `ParseTruncated` to
    /// `ParseUnsupported`.
    #[must_use]
    pub const fn is_parse_outcome(self) -> bool {
        let slot = self as u32;
        slot >= Counter::ParseTruncated as u32 && slot <= Counter::ParseUnsupported as u32
    }

    /// Whether this slot counts a drop; every `XDP_DROP` increments one.
    #[must_use]
    pub const fn is_drop_reason(self) -> bool {
        let slot = self as u32;
        slot >= Counter::DropNoBackend as u32 && slot <= Counter::GuardListenerSyn as u32
    }

    /// Slots the guard drops under, one per reason; per listener, the
    /// guard's own counters keep them in this order (see [`GUARD_REASONS`]).
    pub const GUARD: [Counter; GUARD_REASONS as usize] = [
        Counter::GuardDeny,
        Counter::GuardNotAllowed,
        Counter::GuardMartian,
        Counter::GuardBadFlags,
        Counter::GuardFragment,
        Counter::GuardStray,
        Counter::GuardSourceSyn,
        Counter::GuardSourcePackets,
        Counter::GuardListenerSyn,
    ];

    /// This drop reason's index among the guard's reasons, `None` for any
    /// other slot.
    #[must_use]
    pub const fn guard_index(self) -> Option<u32> {
        let slot = self as u32;
        if slot >= Counter::GuardDeny as u32 && slot <= Counter::GuardListenerSyn as u32 {
            Some(slot - Counter::GuardDeny as u32)
        } else {
            None
        }
    }

    /// Stable snake-case name, used in status output and metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Counter::VerdictPass => "verdict_pass",
            Counter::VerdictDrop => "verdict_drop",
            Counter::VerdictTx => "verdict_tx",
            Counter::VerdictRedirect => "verdict_redirect",
            Counter::ParseTruncated => "parse_truncated",
            Counter::ParseNonIp => "parse_non_ip",
            Counter::ParseOtherL4 => "parse_other_l4",
            Counter::ParseTcp4 => "parse_tcp4",
            Counter::ParseUdp4 => "parse_udp4",
            Counter::ParseTcp6 => "parse_tcp6",
            Counter::ParseUdp6 => "parse_udp6",
            Counter::ParseFragment => "parse_fragment",
            Counter::ParseUnsupported => "parse_unsupported",
            Counter::Vlan => "vlan",
            Counter::NotVip => "not_vip",
            Counter::FlowHit => "flow_hit",
            Counter::FlowNew => "flow_new",
            Counter::IcmpTooBig => "icmp_too_big",
            Counter::ForwardDsr => "forward_dsr",
            Counter::ForwardIpip => "forward_ipip",
            Counter::DropNoBackend => "drop_no_backend",
            Counter::DropEncapFailed => "drop_encap_failed",
            Counter::DropTooBig => "drop_too_big",
            Counter::DropFamilyMismatch => "drop_family_mismatch",
            Counter::DropNoTxPort => "drop_no_tx_port",
            Counter::GuardDeny => "guard_deny",
            Counter::GuardNotAllowed => "guard_not_allowed",
            Counter::GuardMartian => "guard_martian",
            Counter::GuardBadFlags => "guard_bad_flags",
            Counter::GuardFragment => "guard_fragment",
            Counter::GuardStray => "guard_stray",
            Counter::GuardSourceSyn => "guard_source_syn",
            Counter::GuardSourcePackets => "guard_source_packets",
            Counter::GuardListenerSyn => "guard_listener_syn",
            Counter::PassListener => "pass_listener",
            Counter::FlowSyn => "flow_syn",
            Counter::Decapsulated => "decapsulated",
            Counter::NotTunnel => "not_tunnel",
            Counter::SynCookie => "syn_cookie",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn guard_reasons_are_drop_reasons_in_order() {
        for (i, c) in Counter::GUARD.iter().enumerate() {
            assert!(c.is_drop_reason(), "{}", c.name());
            assert_eq!(c.guard_index(), Some(i as u32), "{}", c.name());
        }
        assert_eq!(Counter::PassListener.guard_index(), None);
        assert!(!Counter::PassListener.is_drop_reason());
    }

    #[test]
    fn all_is_in_slot_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{} out of order", c.name());
        }
    }
}
