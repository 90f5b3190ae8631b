//! Reading a PROXY header from the first bytes of a connection: version 1
//! (text, at most 107 bytes) or 2 (binary, signature first), strictly as
//! the specification writes them. A pure function over bytes: it says how
//! long the header is, that more bytes are needed, or why these bytes are
//! not a header, and never reads past the header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Addresses, Header, V1_MAX, V2_MAX, V2_SIGNATURE, Version};

/// The outcome of reading a header from the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long (the connection's data follows).
    Complete {
        /// What it says.
        header: Header,
        /// Its length in bytes.
        len: usize,
    },
    /// The bytes so far are a valid beginning: read more.
    Incomplete,
}

/// Why bytes are not a PROXY header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Neither signature.
    #[error("no PROXY protocol header (the peer must send one)")]
    Missing,
    /// A version 1 line longer than 107 bytes.
    #[error("PROXY v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A version 1 line that breaks the grammar.
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    /// A version 2 header that breaks the format.
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
    /// A version 2 header longer than balancer accepts.
    #[error("PROXY v2 header of {0} bytes exceeds {V2_MAX}")]
    V2TooLong(usize),
}

/// Reads a header from `bytes`, the first bytes of a connection.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    const V1_START: &[u8] = b"PROXY ";
    let n = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..n] == V2_SIGNATURE[..n] && !bytes.is_empty() {
        return if n < V2_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            v2(bytes)
        };
    }
    let n = bytes.len().min(V1_START.len());
    if bytes[..n] == V1_START[..n] && !bytes.is_empty() {
        return if n < V1_START.len() {
            Ok(Parsed::Incomplete)
        } else {
            v1(bytes)
        };
    }
    if bytes.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    Err(ParseError::Missing)
}

fn v1(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if bytes.len() >= V1_MAX {
            return Err(ParseError::V1TooLong);
        }
        // A bare LF or CR inside the line can never become valid (a CR
        // at the very end may still be followed by its LF).
        bare_break(&window[..window.len().saturating_sub(1)])?;
        if window.ends_with(b"\n") {
            return Err(BARE_BREAK);
        }
        return Ok(Parsed::Incomplete);
    };
    // The same rule for a whole line, so the verdict does not depend on how
    // the bytes were split into reads (found by the proxy_header fuzz
    // target: `UNKNOWN` lines with a bare LF were accepted whole).
    bare_break(&bytes[..end])?;
    let line = std::str::from_utf8(&bytes[..end]).map_err(|_| ParseError::V1("not ASCII"))?;
    let mut fields = line.split(' ');
    let _proxy = fields.next();
    let addresses = match fields.next() {
        // The rest of an UNKNOWN line is ignored, as the specification says.
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let parts: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = parts[..] else {
                return Err(ParseError::V1("expected 4 fields after the family"));
            };
            let v6 = family == "TCP6";
            Some(Addresses {
                source: SocketAddr::new(v1_ip(src, v6)?, v1_port(sport)?),
                destination: SocketAddr::new(v1_ip(dst, v6)?, v1_port(dport)?),
            })
        }
        _ => return Err(ParseError::V1("unknown family (TCP4, TCP6 or UNKNOWN)")),
    };
    Ok(Parsed::Complete {
        header: Header {
            version: Version::V1,
            addresses,
            tlvs: Vec::new(),
        },
        len: end + 2,
    })
}

const BARE_BREAK: ParseError =
    ParseError::V1("a line feed or carriage return alone inside the line");

/// A version 1 line holds no CR or LF but its final CRLF.
fn bare_break(line: &[u8]) -> Result<(), ParseError> {
    if line.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return Err(BARE_BREAK);
    }
    Ok(())
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, ParseError> {
    if v6 {
        text.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ParseError::V1("not an IPv6 address"))
    } else {
        text.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ParseError::V1("not an IPv4 address"))
    }
}

fn v1_port(text: &str) -> Result<u16, ParseError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(ParseError::V1(
            "a port is not a decimal number without leading zeros",
        ));
    }
    text.parse()
        .map_err(|_| ParseError::V1("a port exceeds 65535"))
}

fn v2(bytes: &[u8]) -> Result<Parsed, ParseError> {
    if bytes.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Err(ParseError::V2("version is not 2"));
    }
    let local = match command {
        0 => true,
        1 => false,
        _ => return Err(ParseError::V2("command is neither LOCAL nor PROXY")),
    };
    let (family, transport) = (bytes[13] >> 4, bytes[13] & 0x0f);
    if family > 3 || transport > 2 {
        return Err(ParseError::V2("unknown address family or transport"));
    }
    let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if len > V2_MAX {
        return Err(ParseError::V2TooLong(len));
    }
    if bytes.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let body = &bytes[16..len];
    let address_len = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < address_len {
        return Err(ParseError::V2("shorter than its addresses"));
    }
    let (raw, rest) = body.split_at(address_len);
    let addresses = match family {
        _ if local => None,
        1 => {
            let ip =
                |o: usize| IpAddr::from(<[u8; 4]>::try_from(&raw[o..o + 4]).unwrap_or_default());
            let port = |o: usize| u16::from_be_bytes([raw[o], raw[o + 1]]);
            Some(Addresses {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        2 => {
            let ip =
                |o: usize| IpAddr::from(<[u8; 16]>::try_from(&raw[o..o + 16]).unwrap_or_default());
            let port = |o: usize| u16::from_be_bytes([raw[o], raw[o + 1]]);
            Some(Addresses {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        // UNSPEC and UNIX: no address balancer can use.
        _ => None,
    };
    Ok(Parsed::Complete {
        header: Header {
            version: Version::V2,
            addresses,
            tlvs: tlvs(rest)?,
        },
        len,
    })
}

fn tlvs(mut rest: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ParseError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ParseError::V2("a TLV shorter than its type and length"));
        }
        let n = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        if rest.len() < 3 + n {
            return Err(ParseError::V2("a TLV longer than the header"));
        }
        out.push((rest[0], rest[3..3 + n].to_vec()));
        rest = &rest[3 + n..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
