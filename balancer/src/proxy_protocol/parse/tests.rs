//! The parser against the specification's examples, every way a header
//! can be cut short or broken, and what the writer writes.

use std::net::SocketAddr;

use super::{ParseError, Parsed, parse};
use crate::proxy_protocol::{Addresses, Header, V2_SIGNATURE, Version, send, tlv};

fn addresses(source: &str, destination: &str) -> Addresses {
    Addresses {
        source: source.parse::<SocketAddr>().expect("source"),
        destination: destination.parse::<SocketAddr>().expect("destination"),
    }
}

fn complete(bytes: &[u8]) -> (Header, usize) {
    match parse(bytes) {
        Ok(Parsed::Complete { header, len }) => (header, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn version_1_lines_are_read_with_their_length() {
    let line = b"PROXY TCP4 198.18.0.7 198.18.0.10 56324 443\r\nGET / HTTP/1.1\r\n";
    let (h, len) = complete(line);
    assert_eq!(len, 45);
    assert_eq!(h.version, Version::V1);
    assert_eq!(
        h.addresses,
        Some(addresses("198.18.0.7:56324", "198.18.0.10:443"))
    );
    let (h, _) = complete(b"PROXY TCP6 fd00::7 fd00::10 1 65535\r\n");
    assert_eq!(
        h.addresses,
        Some(addresses("[fd00::7]:1", "[fd00::10]:65535"))
    );
    let (h, len) = complete(b"PROXY UNKNOWN anything at all\r\nrest");
    assert_eq!((h.addresses, len), (None, 31));
}

#[test]
fn a_header_cut_short_asks_for_more_at_every_length() {
    let v1 = b"PROXY TCP4 198.18.0.7 198.18.0.10 56324 443\r\n";
    let v2 = send::v2(
        addresses("198.18.0.7:1", "198.18.0.10:2"),
        Some(b"h2"),
        None,
    );
    for whole in [&v1[..], &v2[..]] {
        for n in 0..whole.len() {
            assert_eq!(parse(&whole[..n]), Ok(Parsed::Incomplete), "{n} bytes");
        }
        assert!(matches!(parse(whole), Ok(Parsed::Complete { .. })));
    }
}

#[test]
fn broken_version_1_lines_are_refused() {
    let cases: [(&[u8], ParseError); 12] = [
        (b"GET / HTTP/1.1\r\n", ParseError::Missing),
        (
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
            ParseError::V1("unknown family (TCP4, TCP6 or UNKNOWN)"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
            ParseError::V1("expected 4 fields after the family"),
        ),
        (
            b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
            ParseError::V1("expected 4 fields after the family"),
        ),
        (
            b"PROXY TCP4 fd00::1 1.2.3.4 1 2\r\n",
            ParseError::V1("not an IPv4 address"),
        ),
        (
            b"PROXY TCP6 1.2.3.4 fd00::1 1 2\r\n",
            ParseError::V1("not an IPv6 address"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            ParseError::V1("a port is not a decimal number without leading zeros"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
            ParseError::V1("a port exceeds 65535"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            ParseError::V1("a line feed or carriage return alone inside the line"),
        ),
        // Whole or cut before its end, the same verdict (the fuzz target's
        // first find).
        (
            b"PROXY UNKNOWN 1\n2\r\n",
            ParseError::V1("a line feed or carriage return alone inside the line"),
        ),
        (
            b"PROXY UNKNOWN 1\n",
            ParseError::V1("a line feed or carriage return alone inside the line"),
        ),
        (
            b"PROXY UNKNOWN 1\r2",
            ParseError::V1("a line feed or carriage return alone inside the line"),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            parse(bytes),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat();
    assert_eq!(parse(&long), Err(ParseError::V1TooLong));
}

#[test]
fn version_2_headers_round_trip_with_their_tlvs() {
    let a = addresses("198.18.0.7:56324", "198.18.0.10:443");
    let bytes = send::v2(a, Some(b"h2"), Some("api.example.test"));
    let (h, len) = complete(&[&bytes[..], b"data"].concat());
    assert_eq!(len, bytes.len());
    assert_eq!(h.version, Version::V2);
    assert_eq!(h.addresses, Some(a));
    assert_eq!(
        h.tlvs,
        [
            (tlv::ALPN, b"h2".to_vec()),
            (tlv::AUTHORITY, b"api.example.test".to_vec())
        ]
    );
    let six = addresses("[fd00::7]:1", "[fd00::10]:443");
    assert_eq!(complete(&send::v2(six, None, None)).0.addresses, Some(six));
    // An IPv4 client reaching an IPv6 address goes as IPv6, mapped.
    let mixed = addresses("198.18.0.7:1", "[fd00::10]:443");
    let got = complete(&send::v2(mixed, None, None))
        .0
        .addresses
        .expect("addresses");
    assert_eq!(got.source.ip().to_canonical(), mixed.source.ip());
    // And v1 says UNKNOWN for it.
    assert_eq!(send::v1(mixed), b"PROXY UNKNOWN\r\n");
    let four = send::v1(a);
    assert_eq!(complete(&four).0.addresses, Some(a));
}

#[test]
fn version_2_local_and_unspecified_carry_no_address() {
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x11, 0, 12]);
    local.extend_from_slice(&[198, 18, 0, 7, 198, 18, 0, 10, 0, 1, 0, 2]);
    assert_eq!(complete(&local).0.addresses, None);
    let mut unspec = V2_SIGNATURE.to_vec();
    unspec.extend_from_slice(&[0x21, 0x00, 0, 0]);
    assert_eq!(
        complete(&unspec),
        (
            Header {
                version: Version::V2,
                addresses: None,
                tlvs: vec![]
            },
            16
        )
    );
}

#[test]
fn broken_version_2_headers_are_refused() {
    let header = |ver_cmd: u8, fam: u8, body: &[u8]| {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[ver_cmd, fam]);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    };
    let cases = [
        (
            header(0x11, 0x11, &[0; 12]),
            ParseError::V2("version is not 2"),
        ),
        (
            header(0x22, 0x11, &[0; 12]),
            ParseError::V2("command is neither LOCAL nor PROXY"),
        ),
        (
            header(0x21, 0x41, &[0; 12]),
            ParseError::V2("unknown address family or transport"),
        ),
        (
            header(0x21, 0x13, &[0; 12]),
            ParseError::V2("unknown address family or transport"),
        ),
        (
            header(0x21, 0x11, &[0; 8]),
            ParseError::V2("shorter than its addresses"),
        ),
        (
            header(0x21, 0x21, &[0; 12]),
            ParseError::V2("shorter than its addresses"),
        ),
        (
            header(0x21, 0x11, &[[0; 12].as_slice(), &[1, 0]].concat()),
            ParseError::V2("a TLV shorter than its type and length"),
        ),
        (
            header(0x21, 0x11, &[[0; 12].as_slice(), &[1, 0, 5, b'h']].concat()),
            ParseError::V2("a TLV longer than the header"),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse(&bytes), Err(want));
    }
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(parse(&huge), Err(ParseError::V2TooLong(16 + 65535)));
}
