//! The PROXY protocol (versions 1 and 2, from the `HAProxy` project): the header a proxy in
//! front sends to say who the client was, and the one balancer sends to
//! backends. [`parse`] reads one from bytes (a pure function, fuzzed);
//! [`send`] writes one.

pub mod expect;
pub mod parse;
pub mod send;

use std::net::SocketAddr;

/// The signature that opens every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// The longest version 2 header accepted: addresses and TLVs of a sane
/// sender fit many times over; a peer announcing more is refused rather
/// than buffered.
pub const V2_MAX: usize = 16 + 2048;

/// A header's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Text: `PROXY TCP4 ...\r\n`.
    V1,
    /// Binary, with optional TLVs.
    V2,
}

/// What a parsed header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its version.
    pub version: Version,
    /// The client's and the proxy's addresses; `None` for a `LOCAL`
    /// command (the proxy's own connection, a health check), `UNKNOWN`
    /// (v1) or an unspecified or UNIX family (v2): the connection's own
    /// addresses stand.
    pub addresses: Option<Addresses>,
    /// Version 2 TLVs, in order (type, value).
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// The addresses a header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// The client.
    pub source: SocketAddr,
    /// The address the client reached.
    pub destination: SocketAddr,
}

/// Version 2 TLV types balancer writes or reads (from the specification).
pub mod tlv {
    /// The ALPN protocol the client negotiated.
    pub const ALPN: u8 = 0x01;
    /// The host name the client asked for (TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
}
