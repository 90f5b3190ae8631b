//! Header parsing: Ethernet, one 802.1Q tag, IPv4 (with options), IPv6, TCP,
//! UDP, and ICMP / `ICMPv6` "packet too big" (whose embedded header names the
//! flow it belongs to).
//!
//! Written policy for what is not parsed to L4: IPv4 non-first fragments
//! carry no ports ([`ParseError::Fragment`]); IPv6 extension headers and bad
//! IPv4 header lengths are [`ParseError::Unsupported`]; other protocols are
//! [`ParseError::OtherL4`]. All of them are passed to the kernel stack, which
//! has the reassembly and option machinery. A first fragment carries its
//! ports and is balanced like any packet of its flow.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use balancer_common::{Counter, FlowTuple};

use crate::ptr::{Truncated, ptr_at, read};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
/// IP protocol numbers.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol numbers.
pub const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// Ethernet header length.
pub const ETH_LEN: usize = 14;

#[repr(C)]
#[derive(Clone, Copy)]
struct EthHdr {
    dst: [u8; 6],
    src: [u8; 6],
    ether_type: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct VlanHdr {
    tci: [u8; 2],
    ether_type: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4Hdr {
    version_ihl: u8,
    tos: u8,
    total_len: [u8; 2],
    id: [u8; 2],
    frag: [u8; 2],
    ttl: u8,
    protocol: u8,
    check: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6Hdr {
    version_class_flow: [u8; 4],
    payload_len: [u8; 2],
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

/// Ports, the first four bytes of TCP and UDP headers.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ports {
    src: [u8; 2],
    dst: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IcmpHdr {
    kind: u8,
    code: u8,
    rest: [u8; 6],
}

const TCP_HDR_LEN: usize = 20;
/// Offset of the flags byte in the TCP header.
const TCP_FLAGS_AT: usize = 13;
const UDP_HDR_LEN: usize = 8;

/// Why a frame was not parsed to a balanceable packet.
#[derive(Clone, Copy)]
pub enum ParseError {
    Truncated,
    NonIp,
    OtherL4,
    /// A non-first IPv4 fragment, with its destination (IPv4-mapped).
    Fragment([u8; 16]),
    Unsupported,
}

impl From<Truncated> for ParseError {
    fn from(_: Truncated) -> Self {
        ParseError::Truncated
    }
}

impl ParseError {
    /// The counter slot for this outcome.
    pub fn counter(self) -> Counter {
        match self {
            ParseError::Truncated => Counter::ParseTruncated,
            ParseError::NonIp => Counter::ParseNonIp,
            ParseError::OtherL4 => Counter::ParseOtherL4,
            ParseError::Fragment(_) => Counter::ParseFragment,
            ParseError::Unsupported => Counter::ParseUnsupported,
        }
    }
}

/// What the later stages need from a parsed packet.
pub struct Packet {
    pub vlan: bool,
    pub ipv6: bool,
    /// Offset of the IP header (14, or 18 with a VLAN tag).
    pub l3: usize,
    /// Length of the whole IP packet, header included.
    pub ip_len: u16,
    /// IPv4 TOS / IPv6 traffic class, copied to a tunnel's outer header.
    pub tos: u8,
    /// The flow this packet belongs to, client -> VIP. For an ICMP "too
    /// big" message it is the flow of the packet quoted inside, turned
    /// around (the quoted packet went VIP -> client).
    pub flow: FlowTuple,
    /// The packet is an ICMP / `ICMPv6` "too big" message.
    pub icmp_too_big: bool,
    /// TCP flags (FIN 0x01 ... URG 0x20); zero for anything but TCP.
    pub tcp_flags: u8,
}

/// TCP flag bits.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag bits.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag bits.
pub const TCP_RST: u8 = 0x04;
/// TCP flag bits.
pub const TCP_ACK: u8 = 0x10;

impl Packet {
    /// Whether this is TCP.
    #[inline(always)]
    pub fn tcp(&self) -> bool {
        self.flow.protocol == IPPROTO_TCP && !self.icmp_too_big
    }

    /// Whether this is a connection's first segment: SYN without ACK.
    #[inline(always)]
    pub fn syn(&self) -> bool {
        self.tcp() && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// The counter slot for this outcome.
    pub fn outcome(&self) -> Counter {
        match (self.icmp_too_big, self.ipv6, self.flow.protocol) {
            (true, ..) => Counter::ParseOtherL4,
            (false, false, IPPROTO_TCP) => Counter::ParseTcp4,
            (false, false, _) => Counter::ParseUdp4,
            (false, true, IPPROTO_TCP) => Counter::ParseTcp6,
            (false, true, _) => Counter::ParseUdp6,
        }
    }
}

/// Network-layer facts of one IP header.
struct L3 {
    ipv6: bool,
    protocol: u8,
    /// Offset of the transport header.
    l4: usize,
    src: [u8; 16],
    dst: [u8; 16],
    len: u16,
    tos: u8,
}

/// Parses the frame down to its TCP, UDP or ICMP-too-big header.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, ParseError> {
    let eth: EthHdr = read(ctx, 0)?;
    let mut l3 = size_of::<EthHdr>();
    let mut ether_type = u16::from_be_bytes(eth.ether_type);
    let vlan = ether_type == ETH_P_8021Q;
    if vlan {
        let tag: VlanHdr = read(ctx, l3)?;
        ether_type = u16::from_be_bytes(tag.ether_type);
        l3 += size_of::<VlanHdr>();
    }
    let ip = match ether_type {
        ETH_P_IPV4 => ipv4(ctx, l3)?,
        ETH_P_IPV6 => ipv6(ctx, l3)?,
        _ => return Err(ParseError::NonIp),
    };
    let (flow, icmp_too_big) = match ip.protocol {
        IPPROTO_TCP | IPPROTO_UDP => (transport(ctx, &ip)?, false),
        IPPROTO_ICMP if !ip.ipv6 => (too_big(ctx, &ip, 3, 4)?, true),
        IPPROTO_ICMPV6 if ip.ipv6 => (too_big(ctx, &ip, 2, 0)?, true),
        _ => return Err(ParseError::OtherL4),
    };
    // `transport` checked that the whole fixed TCP header is there.
    let tcp_flags = if ip.protocol == IPPROTO_TCP {
        read::<u8>(ctx, ip.l4 + TCP_FLAGS_AT)?
    } else {
        0
    };
    Ok(Packet {
        vlan,
        ipv6: ip.ipv6,
        l3,
        ip_len: ip.len,
        tos: ip.tos,
        flow,
        icmp_too_big,
        tcp_flags,
    })
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, at: usize) -> Result<L3, ParseError> {
    let ip: Ipv4Hdr = read(ctx, at)?;
    if ip.version_ihl >> 4 != 4 {
        return Err(ParseError::Unsupported);
    }
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    if ihl < size_of::<Ipv4Hdr>() {
        return Err(ParseError::Unsupported);
    }
    // Low 13 bits: fragment offset. Non-zero means no L4 header here.
    if u16::from_be_bytes(ip.frag) & 0x1fff != 0 {
        return Err(ParseError::Fragment(FlowTuple::v4_mapped(ip.dst)));
    }
    Ok(L3 {
        ipv6: false,
        protocol: ip.protocol,
        l4: at + ihl,
        src: FlowTuple::v4_mapped(ip.src),
        dst: FlowTuple::v4_mapped(ip.dst),
        len: u16::from_be_bytes(ip.total_len),
        tos: ip.tos,
    })
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, at: usize) -> Result<L3, ParseError> {
    let ip: Ipv6Hdr = read(ctx, at)?;
    if ip.version_class_flow[0] >> 4 != 6 {
        return Err(ParseError::Unsupported);
    }
    match ip.next_header {
        // Hop-by-hop, routing, fragment, AH, destination options, mobility,
        // HIP, shim6: walking them is left to the kernel.
        0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 => return Err(ParseError::Unsupported),
        _ => {}
    }
    let class = (ip.version_class_flow[0] << 4) | (ip.version_class_flow[1] >> 4);
    Ok(L3 {
        ipv6: true,
        protocol: ip.next_header,
        l4: at + size_of::<Ipv6Hdr>(),
        src: ip.src,
        dst: ip.dst,
        len: u16::from_be_bytes(ip.payload_len).saturating_add(size_of::<Ipv6Hdr>() as u16),
        tos: class,
    })
}

/// The flow of a TCP or UDP header at `ip.l4`.
#[inline(always)]
fn transport(ctx: &XdpContext, ip: &L3) -> Result<FlowTuple, ParseError> {
    // The whole fixed header must be present, not just the ports: a later
    // stage reads TCP flags, and a UDP datagram shorter than 8 bytes is bogus.
    match ip.protocol {
        IPPROTO_TCP => ptr_at::<[u8; TCP_HDR_LEN]>(ctx, ip.l4).map(drop)?,
        _ => ptr_at::<[u8; UDP_HDR_LEN]>(ctx, ip.l4).map(drop)?,
    }
    let ports: Ports = read(ctx, ip.l4)?;
    let (sport, dport) = (u16::from_be_bytes(ports.src), u16::from_be_bytes(ports.dst));
    Ok(FlowTuple {
        src: ip.src,
        dst: ip.dst,
        src_port: sport,
        dst_port: dport,
        protocol: ip.protocol,
        pad: [0; 3],
    })
}

/// An ICMP message of `kind`/`code` ("fragmentation needed" for IPv4,
/// "packet too big" for IPv6) quoting a TCP or UDP packet: the flow of the
/// quoted packet, turned around. Anything else is `OtherL4`.
#[inline(always)]
fn too_big(ctx: &XdpContext, ip: &L3, kind: u8, code: u8) -> Result<FlowTuple, ParseError> {
    let icmp: IcmpHdr = read(ctx, ip.l4)?;
    if icmp.kind != kind || icmp.code != code {
        return Err(ParseError::OtherL4);
    }
    let at = ip.l4 + size_of::<IcmpHdr>();
    let inner = if ip.ipv6 {
        ipv6(ctx, at)?
    } else {
        ipv4(ctx, at)?
    };
    if inner.protocol != IPPROTO_TCP && inner.protocol != IPPROTO_UDP {
        return Err(ParseError::OtherL4);
    }
    // The quoted packet holds at least 8 bytes of its transport header, the
    // ports; the rest (flags, lengths) may be cut, so read only the ports.
    let ports: Ports = read(ctx, inner.l4)?;
    let (sport, dport) = (u16::from_be_bytes(ports.src), u16::from_be_bytes(ports.dst));
    Ok(FlowTuple {
        src: inner.dst,
        dst: inner.src,
        src_port: dport,
        dst_port: sport,
        protocol: inner.protocol,
        pad: [0; 3],
    })
}
