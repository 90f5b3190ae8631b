//! A small packet builder for crafting test frames: Ethernet (optionally
//! 802.1Q-tagged), IPv4 (with options and fragment fields) or IPv6, and TCP,
//! UDP or another protocol, with correct lengths and checksums. Used by the
//! packet tests and by tools that ask the real program what it would do.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Source MAC of crafted frames.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of crafted frames.
pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The network layer of a crafted frame.
#[derive(Clone, Debug)]
pub enum Ip {
    /// IPv4.
    V4 {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// Option bytes (padded to a multiple of 4 by the builder).
        options: Vec<u8>,
        /// Fragment offset in 8-byte units.
        frag_offset: u16,
        /// More-fragments flag.
        more_fragments: bool,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: Ipv6Addr,
        /// Destination.
        dst: Ipv6Addr,
    },
}

/// The transport layer of a crafted frame.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    /// TCP with the given flags byte (SYN = 0x02, ACK = 0x10).
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
        /// Flags byte.
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// Any other IP protocol; the payload follows the IP header directly.
    Other(u8),
}

/// A frame to build.
#[derive(Clone, Debug)]
pub struct Frame {
    /// 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Network layer.
    pub ip: Ip,
    /// Transport layer.
    pub l4: L4,
    /// Payload after the transport header.
    pub payload: Vec<u8>,
}

/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

impl Frame {
    /// A TCP frame over IPv4 with no options.
    #[must_use]
    pub fn tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Self {
        Self::new(
            Self::v4(src, dst),
            L4::Tcp {
                src: sport,
                dst: dport,
                flags,
            },
        )
    }

    /// A UDP frame over IPv4.
    #[must_use]
    pub fn udp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Self::new(
            Self::v4(src, dst),
            L4::Udp {
                src: sport,
                dst: dport,
            },
        )
    }

    /// A TCP frame over IPv6.
    #[must_use]
    pub fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Self {
        Self::new(
            Ip::V6 { src, dst },
            L4::Tcp {
                src: sport,
                dst: dport,
                flags,
            },
        )
    }

    /// A UDP frame over IPv6.
    #[must_use]
    pub fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Self {
        Self::new(
            Ip::V6 { src, dst },
            L4::Udp {
                src: sport,
                dst: dport,
            },
        )
    }

    fn v4(src: Ipv4Addr, dst: Ipv4Addr) -> Ip {
        Ip::V4 {
            src,
            dst,
            options: Vec::new(),
            frag_offset: 0,
            more_fragments: false,
        }
    }

    fn new(ip: Ip, l4: L4) -> Self {
        Self {
            vlan: None,
            ip,
            l4,
            payload: b"hello".to_vec(),
        }
    }

    /// Wire bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let (proto, mut l4) = match self.l4 {
            L4::Tcp { src, dst, flags } => {
                let mut h = Vec::with_capacity(20);
                h.extend_from_slice(&src.to_be_bytes());
                h.extend_from_slice(&dst.to_be_bytes());
                h.extend_from_slice(&1u32.to_be_bytes()); // sequence
                h.extend_from_slice(&0u32.to_be_bytes()); // ack
                h.extend_from_slice(&[0x50, flags]); // data offset 5 words
                h.extend_from_slice(&65_535u16.to_be_bytes()); // window
                h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                (6u8, h)
            }
            L4::Udp { src, dst } => {
                let len = (8 + self.payload.len()) as u16;
                let mut h = Vec::with_capacity(8);
                h.extend_from_slice(&src.to_be_bytes());
                h.extend_from_slice(&dst.to_be_bytes());
                h.extend_from_slice(&len.to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                (17u8, h)
            }
            L4::Other(p) => (p, Vec::new()),
        };
        let csum_at = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Other(_) => None,
        };
        l4.extend_from_slice(&self.payload);
        let (ethertype, ip) = match &self.ip {
            Ip::V4 {
                src,
                dst,
                options,
                frag_offset,
                more_fragments,
            } => {
                if let Some(at) = csum_at {
                    let mut pseudo = Vec::new();
                    pseudo.extend_from_slice(&src.octets());
                    pseudo.extend_from_slice(&dst.octets());
                    pseudo.extend_from_slice(&[0, proto]);
                    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                    let c = checksum(&[&pseudo, &l4]);
                    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
                }
                let mut opts = options.clone();
                while opts.len() % 4 != 0 {
                    opts.push(0);
                }
                let ihl = (20 + opts.len()) / 4;
                let total = (ihl * 4 + l4.len()) as u16;
                let frag = (frag_offset & 0x1fff) | if *more_fragments { 0x2000 } else { 0 };
                let mut h = Vec::with_capacity(ihl * 4);
                h.push(0x40 | ihl as u8);
                h.push(0);
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34]);
                h.extend_from_slice(&frag.to_be_bytes());
                h.extend_from_slice(&[64, proto, 0, 0]);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                h.extend_from_slice(&opts);
                let c = checksum(&[&h]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend_from_slice(&l4);
                (0x0800u16, h)
            }
            Ip::V6 { src, dst } => {
                if let Some(at) = csum_at {
                    let mut pseudo = Vec::new();
                    pseudo.extend_from_slice(&src.octets());
                    pseudo.extend_from_slice(&dst.octets());
                    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                    pseudo.extend_from_slice(&[0, 0, 0, proto]);
                    let c = checksum(&[&pseudo, &l4]);
                    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
                }
                let mut h = Vec::with_capacity(40 + l4.len());
                h.extend_from_slice(&[0x60, 0, 0, 0]);
                h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                h.extend_from_slice(&[proto, 64]);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                h.extend_from_slice(&l4);
                (0x86ddu16, h)
            }
        };
        let mut f = Vec::with_capacity(18 + ip.len());
        f.extend_from_slice(&LB_MAC);
        f.extend_from_slice(&CLIENT_MAC);
        if let Some(id) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&ip);
        f
    }
}

/// Internet checksum (RFC 1071) over the concatenation of `parts`.
#[must_use]
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::{Frame, SYN, checksum};

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = Frame::tcp4(
            [198, 18, 0, 1].into(),
            40_000,
            [198, 18, 0, 10].into(),
            80,
            SYN,
        )
        .bytes();
        assert_eq!(checksum(&[&f[14..34]]), 0, "a correct header sums to zero");
        assert_eq!(f.len(), 14 + 20 + 20 + 5);
    }
}
