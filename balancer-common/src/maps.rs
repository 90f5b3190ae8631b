//! Keys, values and names of the maps the XDP program shares with the
//! daemon. Every name carries its layout version: a change to a struct here
//! gets a new suffix, so a pinned map of the old layout is never misread.
//! All structs are `#[repr(C)]` with explicit padding and no `bool`.

use crate::FlowTuple;

/// VIP -> [`VipMeta`].
pub const VIPS_MAP: &str = "VIPS_V1";
/// Flat array of Maglev rings: slot -> backend id.
pub const RING_MAP: &str = "RING_V1";
/// Backend id -> [`BackendEntry`].
pub const BACKENDS_MAP: &str = "BACKENDS_V2";
/// [`FlowTuple`] -> [`FlowValue`], an LRU table of placed flows.
pub const FLOWS_MAP: &str = "FLOWS_V2";
/// One [`Settings`] entry.
pub const SETTINGS_MAP: &str = "SETTINGS_V2";
/// Device map of egress interfaces other than the one the program is
/// attached to: [`BackendEntry::tx_port`] -> interface index.
pub const TX_PORTS_MAP: &str = "TX_PORTS_V1";
/// Slots in [`TX_PORTS_MAP`]; slot 0 is never used (it means `XDP_TX`), so
/// backends can sit behind up to 63 interfaces besides the XDP one.
pub const TX_PORTS: u32 = 64;
/// Decapsulator: local tunnel endpoints (16-byte addresses, IPv4-mapped)
/// whose IP-in-IP packets are unwrapped; value unused (zero).
pub const DECAP_ADDRS_MAP: &str = "DECAP_ADDRS_V1";

/// The flow-table key is the flow's 5-tuple.
pub type FlowKey = FlowTuple;

/// A VIP as the program matches it: address (IPv4-mapped for IPv4),
/// destination port and IP protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// Address, 16 bytes, IPv4-mapped for IPv4.
    pub addr: [u8; 16],
    /// Destination port, host order.
    pub port: u16,
    /// IP protocol (6 or 17).
    pub protocol: u8,
    /// Explicit padding; zero.
    pub pad: u8,
}

/// Where a VIP's Maglev ring lives in [`RING_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipMeta {
    /// First slot of this VIP's ring.
    pub ring_offset: u32,
    /// Ring length (the pool's prime Maglev table size); 0 = no backend.
    pub ring_size: u32,
    /// Reserved for per-VIP flags; zero.
    pub flags: u32,
    /// Stable VIP number, for counters.
    pub vip_id: u32,
}

/// Address family tag in [`BackendEntry::family`].
pub const FAMILY_V4: u8 = 4;
/// Address family tag in [`BackendEntry::family`].
pub const FAMILY_V6: u8 = 6;

/// How to reach one backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendEntry {
    /// Backend address, 16 bytes, IPv4-mapped for IPv4.
    pub addr: [u8; 16],
    /// Next-hop MAC: the backend itself on a shared L2, else the router.
    pub mac: [u8; 6],
    /// Source MAC of frames to this backend: the egress interface's.
    pub src_mac: [u8; 6],
    /// [`FAMILY_V4`] or [`FAMILY_V6`]; 0 marks an unused slot.
    pub family: u8,
    /// Reserved; zero.
    pub flags: u8,
    /// Explicit padding; zero.
    pub pad: [u8; 2],
    /// 0: out of the interface the packet came in on (`XDP_TX`); else the
    /// [`TX_PORTS_MAP`] slot of the egress interface (a redirect).
    pub tx_port: u32,
}

impl BackendEntry {
    /// The value of an unused slot.
    pub const EMPTY: BackendEntry = BackendEntry {
        addr: [0; 16],
        mac: [0; 6],
        src_mac: [0; 6],
        family: 0,
        flags: 0,
        pad: [0; 2],
        tx_port: 0,
    };
}

/// A placed flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowValue {
    /// Backend id the flow is pinned to.
    pub backend: u32,
    /// The VIP id of the flow's listener plus one, for the guard's
    /// per-listener counters; 0 when unknown (a flow recorded by a program
    /// that predates the field, which was zero padding).
    pub vip: u32,
    /// When the flow was placed, and for UDP when a packet of it was last
    /// seen (to [`UDP_SEEN_EVERY_NS`]): `CLOCK_MONOTONIC` nanoseconds, as
    /// `bpf_ktime_get_ns` reads it.
    pub seen: u64,
}

/// A UDP flow idle this long is placed afresh by the ring, as Katran does:
/// UDP has no end of flow, so without it a client that keeps its port
/// would stay on a drained or re-weighted backend for ever.
pub const UDP_FLOW_IDLE_NS: u64 = 30_000_000_000;
/// How stale a UDP flow's [`FlowValue::seen`] may get before a packet
/// rewrites it: one write a second per flow, not one per packet.
pub const UDP_SEEN_EVERY_NS: u64 = 1_000_000_000;

/// Layouts of earlier versions, kept to migrate the maps an older build
/// pinned (see the daemon's `dataplane::xdp::migrate`).
pub mod previous {
    /// The flow table before [`super::FlowValue::seen`]: same key.
    pub const FLOWS_V1_MAP: &str = "FLOWS_V1";

    /// [`super::FlowValue`] in `FLOWS_V1`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FlowValueV1 {
        /// Backend id.
        pub backend: u32,
        /// VIP id plus one, 0 when unknown.
        pub vip: u32,
    }

    impl FlowValueV1 {
        /// The same flow in today's layout, placed (or last seen) at `now`.
        #[must_use]
        pub const fn migrate(self, now: u64) -> super::FlowValue {
            super::FlowValue {
                backend: self.backend,
                vip: self.vip,
                seen: now,
            }
        }
    }
}

/// Forwarding mode in [`Settings::forwarding`]: rewrite MACs, `XDP_TX`.
pub const FORWARD_DSR: u32 = 0;
/// Forwarding mode in [`Settings::forwarding`]: IP-in-IP encapsulation.
pub const FORWARD_IPIP: u32 = 1;

/// Program-wide settings, one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// [`FORWARD_DSR`] or [`FORWARD_IPIP`].
    pub forwarding: u32,
    /// Largest IP packet the egress link carries; an encapsulated packet
    /// beyond it is dropped and counted.
    pub mtu: u32,
    /// Outer source address for IPv4 tunnels.
    pub ipip_src4: [u8; 4],
    /// Outer source address for IPv6 tunnels.
    pub ipip_src6: [u8; 16],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, made only of integers and byte
    // arrays, with every padding byte an explicit field: any bit pattern is
    // a valid value and none has uninitialised bytes.
    unsafe impl aya::Pod for super::VipKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::VipMeta {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::BackendEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::previous::FlowValueV1 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Settings {}
    // SAFETY: as above (FlowTuple: two 16-byte arrays, two u16, u8, [u8; 3]).
    unsafe impl aya::Pod for crate::FlowTuple {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::{BackendEntry, FlowKey, FlowValue, Settings, VipKey, VipMeta};

    /// The kernel sees these sizes; a change must come with a new map name.
    #[test]
    fn layouts_are_pinned() {
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(size_of::<VipMeta>(), 16);
        assert_eq!(size_of::<BackendEntry>(), 36);
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(size_of::<FlowValue>(), 16);
        assert_eq!(size_of::<super::previous::FlowValueV1>(), 8);
        assert_eq!(size_of::<Settings>(), 28);
    }
}
