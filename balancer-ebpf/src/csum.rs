//! Internet checksum (RFC 1071) over fixed byte ranges, so every loop has a
//! constant bound the verifier accepts.

/// Checksum of a 20-byte IPv4 header whose checksum field is zero.
#[inline(always)]
pub fn ipv4_header(h: &[u8; 20]) -> u16 {
    fold(sum(h, 0, 20))
}

/// Sum of the big-endian 16-bit words of `f[from..to]` (even length), not
/// yet folded: sums of several ranges (a pseudo-header, a header) add up.
#[inline(always)]
pub fn sum<const N: usize>(f: &[u8; N], from: usize, to: usize) -> u32 {
    let mut s = 0u32;
    let mut i = from;
    while i + 1 < to && i + 1 < N {
        s += u32::from(u16::from_be_bytes([f[i], f[i + 1]]));
        i += 2;
    }
    s
}

/// Folds a sum to 16 bits and complements it: the checksum field's value.
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}
