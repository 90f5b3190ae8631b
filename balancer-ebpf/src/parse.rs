//! Header parsing: Ethernet, one 802.1Q tag, IPv4 (with options), IPv6, TCP,
//! UDP. Every header is read through [`ptr_at`], the one bounds check, so the
//! verifier sees a check before each access and a short frame is an `Err`, not
//! a fault.
//!
//! Written policy for what is not parsed to L4 here: IPv4 non-first fragments
//! carry no ports ([`ParseError::Fragment`]); IPv6 extension headers and bad
//! IPv4 header lengths are [`ParseError::Unsupported`]. All of them are passed
//! to the kernel stack, which has the reassembly and option machinery.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use balancer_common::Counter;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

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

const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;

/// Why a frame did not parse to a TCP or UDP header.
#[derive(Clone, Copy)]
pub enum ParseError {
    Truncated,
    NonIp,
    OtherL4,
    Fragment,
    Unsupported,
}

impl ParseError {
    /// The counter slot for this outcome.
    pub fn counter(self) -> Counter {
        match self {
            ParseError::Truncated => Counter::ParseTruncated,
            ParseError::NonIp => Counter::ParseNonIp,
            ParseError::OtherL4 => Counter::ParseOtherL4,
            ParseError::Fragment => Counter::ParseFragment,
            ParseError::Unsupported => Counter::ParseUnsupported,
        }
    }
}

/// What the later stages need from a parsed TCP or UDP packet.
pub struct Packet {
    pub vlan: bool,
    pub ipv6: bool,
    pub protocol: u8,
}

impl Packet {
    /// The counter slot for this outcome.
    pub fn outcome(&self) -> Counter {
        match (self.ipv6, self.protocol) {
            (false, IPPROTO_TCP) => Counter::ParseTcp4,
            (false, _) => Counter::ParseUdp4,
            (true, IPPROTO_TCP) => Counter::ParseTcp6,
            (true, _) => Counter::ParseUdp6,
        }
    }
}

/// Pointer to a `T` at `offset` bytes into the frame, if the whole `T` lies
/// inside it. The only way this module touches packet memory.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ParseError> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(ParseError::Truncated);
    }
    Ok((start + offset) as *const T)
}

/// Reads a `T` made only of byte fields (alignment 1) at `offset`.
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, ParseError> {
    let ptr = ptr_at::<T>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the whole `T` lies inside the frame, and
    // every header type here has alignment 1.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Parses the frame down to its TCP or UDP header.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, ParseError> {
    let eth: EthHdr = read(ctx, 0)?;
    let mut offset = size_of::<EthHdr>();
    let mut ether_type = u16::from_be_bytes(eth.ether_type);
    let vlan = ether_type == ETH_P_8021Q;
    if vlan {
        let tag: VlanHdr = read(ctx, offset)?;
        ether_type = u16::from_be_bytes(tag.ether_type);
        offset += size_of::<VlanHdr>();
    }
    let (ipv6, protocol, l4) = match ether_type {
        ETH_P_IPV4 => {
            let ip: Ipv4Hdr = read(ctx, offset)?;
            if ip.version_ihl >> 4 != 4 {
                return Err(ParseError::Unsupported);
            }
            let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
            if ihl < size_of::<Ipv4Hdr>() {
                return Err(ParseError::Unsupported);
            }
            // Low 13 bits: fragment offset. Non-zero means no L4 header here.
            if u16::from_be_bytes(ip.frag) & 0x1fff != 0 {
                return Err(ParseError::Fragment);
            }
            (false, ip.protocol, offset + ihl)
        }
        ETH_P_IPV6 => {
            let ip: Ipv6Hdr = read(ctx, offset)?;
            if ip.version_class_flow[0] >> 4 != 6 {
                return Err(ParseError::Unsupported);
            }
            let l4 = offset + size_of::<Ipv6Hdr>();
            match ip.next_header {
                IPPROTO_TCP | IPPROTO_UDP => (true, ip.next_header, l4),
                // Hop-by-hop, routing, fragment, destination options, AH, ESP-less mobility...
                0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 => return Err(ParseError::Unsupported),
                _ => return Err(ParseError::OtherL4),
            }
        }
        _ => return Err(ParseError::NonIp),
    };
    // The whole fixed header must be present, not just the ports: a later
    // stage reads TCP flags, and a UDP datagram shorter than 8 bytes is bogus.
    match protocol {
        IPPROTO_TCP => ptr_at::<[u8; TCP_HDR_LEN]>(ctx, l4).map(drop)?,
        IPPROTO_UDP => ptr_at::<[u8; UDP_HDR_LEN]>(ctx, l4).map(drop)?,
        _ => return Err(ParseError::OtherL4),
    }
    Ok(Packet {
        vlan,
        ipv6,
        protocol,
    })
}
