//! Writing the PROXY header balancer sends to backends that asked for one
//! (`pools[].proxy_protocol`): version 1 text or version 2 binary, with
//! the client's address and the address it reached, and in version 2 the
//! ALPN and SNI of a TLS connection as TLVs.

use std::net::SocketAddr;

use super::{Addresses, V2_SIGNATURE, tlv};

/// The version 1 header for `a`. Mixed families (an IPv4 client reaching
/// an IPv6 address) cannot be written in version 1: `UNKNOWN` says so.
#[must_use]
pub fn v1(a: Addresses) -> Vec<u8> {
    let (s, d) = (canonical(a.source), canonical(a.destination));
    let text = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    };
    text.into_bytes()
}

/// The version 2 header for `a` (a TCP stream), with the negotiated ALPN
/// protocol and the SNI when the client's connection was TLS.
#[must_use]
pub fn v2(a: Addresses, alpn: Option<&[u8]>, sni: Option<&str>) -> Vec<u8> {
    let (s, d) = (canonical(a.source), canonical(a.destination));
    let mut body = Vec::with_capacity(64);
    let family = if let (SocketAddr::V4(s), SocketAddr::V4(d)) = (s, d) {
        body.extend_from_slice(&s.ip().octets());
        body.extend_from_slice(&d.ip().octets());
        body.extend_from_slice(&s.port().to_be_bytes());
        body.extend_from_slice(&d.port().to_be_bytes());
        0x11
    } else {
        // Mixed families go as IPv6, the IPv4 one mapped.
        let v6 = |a: SocketAddr| match a {
            SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped(),
            SocketAddr::V6(v6) => *v6.ip(),
        };
        body.extend_from_slice(&v6(s).octets());
        body.extend_from_slice(&v6(d).octets());
        body.extend_from_slice(&s.port().to_be_bytes());
        body.extend_from_slice(&d.port().to_be_bytes());
        0x21
    };
    for (kind, value) in [(tlv::ALPN, alpn), (tlv::AUTHORITY, sni.map(str::as_bytes))] {
        if let Some(v) = value.filter(|v| v.len() <= 255) {
            body.push(kind);
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
        }
    }
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The header of `version` for `a`, with a TLS client's ALPN and SNI
/// (version 2 only).
#[must_use]
pub fn header(
    version: crate::config::model::ProxyVersion,
    a: Addresses,
    alpn: Option<&[u8]>,
    sni: Option<&str>,
) -> Vec<u8> {
    match version {
        crate::config::model::ProxyVersion::V1 => v1(a),
        crate::config::model::ProxyVersion::V2 => v2(a, alpn, sni),
    }
}

/// `a` with an IPv4-mapped IPv6 address written as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}
