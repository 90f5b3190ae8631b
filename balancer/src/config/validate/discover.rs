//! `pools[].discover`: a DNS name to follow (A, AAAA or SRV) and a file of
//! backends to watch, with the bounds that keep either from flooding a
//! pool or a resolver.

use std::net::{IpAddr, SocketAddr};

use super::Problems;
use crate::config::{
    defaults::{
        DEFAULT_DISCOVERED_BACKENDS, DEFAULT_DNS_MAX_INTERVAL, DEFAULT_DNS_MIN_INTERVAL,
        DEFAULT_DNS_TIMEOUT, DEFAULT_WEIGHT,
    },
    discover::{Discover, DnsDiscovery, DnsQuery, RecordKind},
    limits::MAX_BACKENDS,
    raw::{RawDiscover, RawDns},
};

/// The most resolvers one name may list.
const MAX_RESOLVERS: usize = 8;
/// The longest a domain name may be, in text without the final dot.
const MAX_DOMAIN: usize = 253;

/// `discover` of the pool at `at`, which lists `statics` backends in a
/// Maglev table of `table` slots.
pub(super) fn discover(
    raw: &RawDiscover,
    at: &str,
    (statics, table): (usize, u64),
    p: &mut Problems,
) -> Discover {
    if raw.dns.is_none() && raw.file.is_none() {
        p.add(
            at,
            "names no source (expected `dns`, `file` or both); remove `discover` for a pool of static backends",
        );
    }
    let max = raw.max_backends.unwrap_or(DEFAULT_DISCOVERED_BACKENDS);
    let field = format!("{at}.max_backends");
    if max == 0 || max > MAX_BACKENDS as u64 {
        p.add(
            &field,
            format!("`{max}` is out of range (expected 1..={MAX_BACKENDS})"),
        );
    } else if statics as u64 + max > table {
        p.add(
            &field,
            format!(
                "{max} discovered backends with the {statics} static ones may not fit the pool's Maglev table of {table} slots; lower it or raise `maglev_table_size`"
            ),
        );
    }
    let file = raw.file.as_ref().map(|f| {
        if !f.starts_with('/') {
            p.add(
                format!("{at}.file"),
                format!("`{f}` must be an absolute path"),
            );
        }
        std::path::PathBuf::from(f)
    });
    Discover {
        dns: raw.dns.as_ref().map(|d| dns(d, &format!("{at}.dns"), p)),
        file,
        max_backends: usize::try_from(max.clamp(1, MAX_BACKENDS as u64)).unwrap_or(1),
    }
}

fn dns(raw: &RawDns, at: &str, p: &mut Problems) -> DnsDiscovery {
    let record = raw.record.unwrap_or(RecordKind::A);
    let name = p
        .check(&format!("{at}.name"), domain(&raw.name, record))
        .unwrap_or_default();
    let port = match (record, raw.port) {
        (RecordKind::SRV, Some(_)) => {
            p.add(
                format!("{at}.port"),
                "SRV records carry their own ports; remove `port`",
            );
            None
        }
        (RecordKind::SRV, None) => None,
        (_, None) => {
            p.add(
                format!("{at}.port"),
                format!("the backends' port is needed for {record} records"),
            );
            None
        }
        (_, Some(port)) => {
            let ok = u16::try_from(port).ok().filter(|p| *p != 0);
            if ok.is_none() {
                p.add(
                    format!("{at}.port"),
                    format!("`{port}` is out of range (expected 1..=65535)"),
                );
            }
            ok
        }
    };
    let weight = if record == RecordKind::SRV && raw.weight.is_some() {
        p.add(
            format!("{at}.weight"),
            "SRV records carry their own weights; remove `weight`",
        );
        DEFAULT_WEIGHT
    } else {
        super::pools::weight(raw.weight, &format!("{at}.weight"), p)
    };
    let resolvers = raw.resolvers.as_ref().map_or_else(Vec::new, |list| {
        let field = format!("{at}.resolvers");
        if list.is_empty() {
            p.add(
                &field,
                "is empty; remove it to use the servers of /etc/resolv.conf",
            );
        }
        p.at_most(&field, list.len(), MAX_RESOLVERS, "resolvers");
        list.iter()
            .enumerate()
            .filter_map(|(i, r)| p.check(&format!("{field}[{i}]"), resolver(r)))
            .collect()
    });
    let min_interval = p.duration(
        &format!("{at}.min_interval"),
        raw.min_interval.as_ref(),
        DEFAULT_DNS_MIN_INTERVAL,
    );
    let max_interval = p.duration(
        &format!("{at}.max_interval"),
        raw.max_interval.as_ref(),
        DEFAULT_DNS_MAX_INTERVAL,
    );
    if min_interval.is_zero() {
        p.add(
            format!("{at}.min_interval"),
            "must be more than 0 (a zero TTL would ask the servers in a loop)",
        );
    }
    if max_interval < min_interval {
        p.add(
            format!("{at}.max_interval"),
            format!("{max_interval:?} is shorter than min_interval ({min_interval:?})"),
        );
    }
    let timeout = p.duration(
        &format!("{at}.timeout"),
        raw.timeout.as_ref(),
        DEFAULT_DNS_TIMEOUT,
    );
    if timeout.is_zero() {
        p.add(format!("{at}.timeout"), "must be more than 0");
    }
    DnsDiscovery {
        query: DnsQuery {
            name,
            record,
            resolvers,
            min_interval,
            max_interval,
            timeout,
            allow_empty: raw.allow_empty.unwrap_or(false),
        },
        port,
        weight,
    }
}

/// A domain name in the form lookups use: lowercase, with the final dot
/// (so no search domain is tried). SRV names must start with the
/// `_service._proto` labels.
fn domain(text: &str, record: RecordKind) -> Result<String, String> {
    let bare = text.strip_suffix('.').unwrap_or(text);
    if bare.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if bare.len() > MAX_DOMAIN {
        return Err(format!(
            "is {} characters long; a domain name has at most {MAX_DOMAIN}",
            bare.len()
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`{text}` has a label of {} characters (expected 1 to 63 between dots)",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "`{text}` holds `{c}`; a domain name has letters, digits, `-` and `_` only"
            ));
        }
    }
    if record == RecordKind::SRV {
        let labels: Vec<&str> = bare.split('.').collect();
        if labels.len() < 3 || !labels[0].starts_with('_') || !labels[1].starts_with('_') {
            return Err(format!(
                "`{text}` is not an SRV name (expected `_service._proto.name`, like `_http._tcp.example.com`)"
            ));
        }
    }
    Ok(format!("{}.", bare.to_ascii_lowercase()))
}

/// A resolver: an IP address (port 53) or `IP:port`.
fn resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not a resolver address (expected `IP` or `IP:port`, like `198.18.0.53` or `[fd00::53]:53`)")
    })
}

#[cfg(test)]
mod tests {
    use super::{RecordKind, domain, resolver};

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            domain("Web.Example.Test", RecordKind::A).as_deref(),
            Ok("web.example.test.")
        );
        assert_eq!(
            domain("_http._tcp.example.test.", RecordKind::SRV).as_deref(),
            Ok("_http._tcp.example.test.")
        );
        assert!(domain("web..test", RecordKind::A).is_err());
        assert!(domain("web test", RecordKind::A).is_err());
        assert!(domain("", RecordKind::A).is_err());
        assert!(domain(&"a".repeat(64), RecordKind::A).is_err());
        let err = domain("web.example.test", RecordKind::SRV).unwrap_err();
        assert!(err.contains("_service._proto"), "{err}");
    }

    #[test]
    fn resolvers_default_to_port_53() {
        assert_eq!(
            resolver("198.18.0.53"),
            Ok("198.18.0.53:53".parse().unwrap())
        );
        assert_eq!(
            resolver("[fd00::53]:5353"),
            Ok("[fd00::53]:5353".parse().unwrap())
        );
        assert!(resolver("ns1.example").is_err());
    }
}
