//! The flow hash. The XDP program, the proxy and `balancer explain` must map a
//! flow to the same Maglev slot, so the one definition lives here. It is
//! versioned by its pinned outputs (see the tests): changing it reshuffles
//! every flow of every `maglev` and `source_hash` pool, so a change needs a new
//! function, not an edit.

/// A flow's addresses and ports. IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`) so one layout serves both families. Addresses are in
/// network byte order as 16 raw bytes; ports are host-order numbers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// Source address, 16 bytes, IPv4-mapped for IPv4.
    pub src: [u8; 16],
    /// Destination address, 16 bytes, IPv4-mapped for IPv4.
    pub dst: [u8; 16],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Explicit padding; always zero.
    pub pad: [u8; 3],
}

impl FlowTuple {
    /// IPv4-mapped form of an IPv4 address given as its four octets.
    #[must_use]
    pub const fn v4_mapped(octets: [u8; 4]) -> [u8; 16] {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
        ]
    }
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
const fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
const fn finish(mut h: u32, len: u32) -> u32 {
    h ^= len;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
const fn word(b: &[u8; 16], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// `MurmurHash3` (x86, 32-bit) of 16 address bytes with a seed: the same mixing
/// as the flow hash, for hashing a source address alone or a backend identity.
#[inline(always)]
#[must_use]
pub const fn addr_hash(addr: &[u8; 16], seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, word(addr, 0));
    h = mix(h, word(addr, 4));
    h = mix(h, word(addr, 8));
    h = mix(h, word(addr, 12));
    finish(h, 16)
}

/// Hash of a whole flow: `MurmurHash3` (x86, 32-bit) over both addresses, the
/// ports and the protocol. Fixed length and loop-free, so the BPF verifier
/// accepts it as is.
#[inline(always)]
#[must_use]
pub const fn flow_hash(t: &FlowTuple, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, word(&t.src, 0));
    h = mix(h, word(&t.src, 4));
    h = mix(h, word(&t.src, 8));
    h = mix(h, word(&t.src, 12));
    h = mix(h, word(&t.dst, 0));
    h = mix(h, word(&t.dst, 4));
    h = mix(h, word(&t.dst, 8));
    h = mix(h, word(&t.dst, 12));
    h = mix(h, (t.src_port as u32) << 16 | t.dst_port as u32);
    h = mix(h, t.protocol as u32);
    finish(h, 37)
}

#[cfg(test)]
mod tests {
    use super::{FlowTuple, addr_hash, flow_hash};

    fn tuple(last: u8, sport: u16) -> FlowTuple {
        FlowTuple {
            src: FlowTuple::v4_mapped([198, 18, 0, last]),
            dst: FlowTuple::v4_mapped([198, 18, 0, 10]),
            src_port: sport,
            dst_port: 80,
            protocol: 6,
            pad: [0; 3],
        }
    }

    /// Pins the outputs. If this fails, the change reshuffles every placed
    /// flow on upgrade: add a new hash instead of editing this one.
    #[test]
    fn outputs_are_pinned() {
        let got = [
            flow_hash(&tuple(1, 40000), 0),
            flow_hash(&tuple(2, 40000), 0),
            flow_hash(&tuple(1, 40001), 0),
            flow_hash(&tuple(1, 40000), 7),
            addr_hash(&FlowTuple::v4_mapped([198, 18, 1, 11]), 0),
            addr_hash(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0),
        ];
        assert_eq!(got, PINNED, "flow hash outputs changed: {got:#010x?}");
    }

    const PINNED: [u32; 6] = [
        0xf0ab_aced,
        0x85ac_da50,
        0xdf21_895a,
        0xe6a5_c60a,
        0xddb5_5438,
        0x9d2a_bfa7,
    ];

    /// `addr_hash` is plain `MurmurHash3_x86_32` over the 16 bytes; these vectors
    /// come from the reference implementation (Python `mmh3`).
    #[test]
    fn addr_hash_matches_reference_murmur3() {
        assert_eq!(addr_hash(&[0; 16], 0), 0x8134_cdf8);
        let v4 = FlowTuple::v4_mapped([198, 18, 1, 11]);
        assert_eq!(addr_hash(&v4, 0), 0xddb5_5438);
        assert_eq!(addr_hash(&v4, 42), 0x3337_abaf);
        let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(addr_hash(&v6, 0), 0x9d2a_bfa7);
    }
}
