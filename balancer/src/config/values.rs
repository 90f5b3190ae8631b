//! Parsers for the value syntaxes the file uses: durations with units,
//! `IP:port` addresses and CIDR prefixes. Each returns the message the
//! validator shows, already quoting the bad value.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::model::Cidr;

/// Parses an HTTP status range, `200-399`, or one status, `204`.
pub fn status_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!("`{text}` is not a status range (expected e.g. `200-399` or `204`, codes 100-599)")
    };
    let (lo, hi) = text
        .trim()
        .split_once('-')
        .unwrap_or((text.trim(), text.trim()));
    let code = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(bad)
    };
    let (lo, hi) = (code(lo)?, code(hi)?);
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Parses `500ms`, `2s`, `1.5m`, `1h`. Zero is an error: every duration in the
/// file is a timeout or period where zero means a busy loop or an instant fail.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "`{text}` is not a duration (expected a number with a unit: ms, s, m or h, e.g. `500ms`)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. `500ms` or `2s`)"))?;
    let secs = value * scale;
    if secs <= 0.0 {
        return Err(format!("`{text}` must be greater than zero"));
    }
    if secs > 7.0 * 86_400.0 {
        return Err(format!("`{text}` is longer than the 7-day maximum"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `198.18.0.10:80` or `[fd00::1]:80`.
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("`{text}` is not an IP:port (expected e.g. `198.18.1.11:80` or `[fd00::1]:80`)")
    })
}

/// Parses `198.18.0.0/15` or `fd00::/8`; a bare address is a host prefix.
/// Host bits must be zero so that `198.18.0.1/15` (almost always a typo) is
/// caught.
pub fn cidr(text: &str) -> Result<Cidr, String> {
    let t = text.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("`{text}` is not a CIDR (expected e.g. `198.18.0.0/15` or `fd00::/8`)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{text}` has a prefix length outside 0..={max}"))?,
    };
    let masked = mask(addr, prefix);
    if masked != addr {
        return Err(format!(
            "`{text}` has host bits set; did you mean `{masked}/{prefix}`?"
        ));
    }
    Ok(Cidr { addr, prefix })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Trial division; table sizes are at most a few million.
#[must_use]
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{cidr, duration, is_prime, socket_addr};

    #[test]
    fn status_ranges() {
        assert_eq!(super::status_range("200-399"), Ok((200, 399)));
        assert_eq!(super::status_range("204"), Ok((204, 204)));
        for bad in ["399-200", "2xx", "99", "600", "200-", ""] {
            assert!(super::status_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1h"), Ok(Duration::from_hours(1)));
        assert!(duration("0s").unwrap_err().contains("greater than zero"));
        assert!(duration("5").unwrap_err().contains("unit"));
        assert!(duration("fast").unwrap_err().contains("`fast`"));
        assert!(duration("30d").is_err());
    }

    #[test]
    fn addresses() {
        assert!(socket_addr("198.18.0.10:80").is_ok());
        assert!(socket_addr("[fd00::1]:80").is_ok());
        assert!(
            socket_addr("198.18.1.300:80")
                .unwrap_err()
                .contains("`198.18.1.300:80`")
        );
        assert!(socket_addr("fd00::1:80").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("198.18.0.0/15").unwrap().prefix, 15);
        assert_eq!(cidr("198.18.0.66").unwrap().prefix, 32);
        assert_eq!(cidr("fd00::/8").unwrap().prefix, 8);
        assert!(cidr("198.18.0.1/15").unwrap_err().contains("198.18.0.0/15"));
        assert!(cidr("198.18.0.0/33").is_err());
        assert!(cidr("nonsense/8").is_err());
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537));
        assert!(is_prime(251));
        assert!(!is_prime(65_536));
        assert!(!is_prime(1));
    }
}
