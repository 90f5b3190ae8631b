//! Per-route rate limits: GCRA (the generic cell rate algorithm, as the
//! XDP guard's per-source buckets use) per key, in a table of bounded size.
//! A key is the client's address (IPv6 by /64, as the guard counts) or a
//! header's value, hashed with a per-limiter random key so a client cannot
//! aim collisions.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::Mutex,
    time::Instant,
};

use http::HeaderMap;

use crate::config::http::{RateKey, RateLimit};

/// Keys one limiter tracks at most; beyond it, keys whose bucket is full
/// again are forgotten first.
pub const TABLE_SIZE: usize = 65_536;

/// One route's limiter.
#[derive(Debug)]
pub struct Limiter {
    key: RateKey,
    /// Nanoseconds between requests at the steady rate.
    interval: u64,
    /// Nanoseconds of credit a full bucket holds (`burst` requests).
    capacity: u64,
    hasher: RandomState,
    /// Key hash -> theoretical arrival time, in nanoseconds since `epoch`.
    table: Mutex<HashMap<u64, u64>>,
    epoch: Instant,
}

impl Limiter {
    /// A limiter for `limit`.
    #[must_use]
    pub fn new(limit: &RateLimit) -> Self {
        let interval = 1_000_000_000 / u64::from(limit.rate.get());
        Self {
            key: limit.key.clone(),
            interval,
            capacity: interval * u64::from(limit.burst.get()),
            hasher: RandomState::new(),
            table: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// Counts a request from `client` with `headers`; `Err(seconds)` to
    /// wait when the key's bucket is empty.
    pub fn check(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), u64> {
        let key = match &self.key {
            RateKey::ClientIp => self.hasher.hash_one(prefix(client)),
            RateKey::Header(name) => {
                // Requests without the header share one bucket.
                let v = headers.get(name).map_or(&[][..], |v| v.as_bytes());
                self.hasher.hash_one(v)
            }
        };
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.take(key, now)
    }

    /// The GCRA step for `key` at `now`.
    fn take(&self, key: u64, now: u64) -> Result<(), u64> {
        let Ok(mut table) = self.table.lock() else {
            // A panic elsewhere poisoned the table: fail open, not closed.
            return Ok(());
        };
        let tat = table.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        if next - now > self.capacity {
            let wait = next - self.capacity - now;
            return Err(wait.div_ceil(1_000_000_000).max(1));
        }
        if table.len() >= TABLE_SIZE && !table.contains_key(&key) {
            // A key whose theoretical arrival time has passed holds a full
            // bucket: forgetting it changes nothing.
            table.retain(|_, t| *t > now);
            if table.len() >= TABLE_SIZE
                && let Some(&k) = table.keys().next()
            {
                table.remove(&k);
            }
        }
        table.insert(key, next);
        Ok(())
    }
}

/// The part of a client address a limit counts by: IPv4 whole, IPv6 by
/// /64 (one subscriber's prefix).
fn prefix(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            o
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::Limiter;
    use crate::config::http::{RateKey, RateLimit};

    fn limiter(key: RateKey, rate: u32, burst: u32) -> Limiter {
        Limiter::new(&RateLimit {
            key,
            rate: NonZeroU32::new(rate).expect("rate"),
            burst: NonZeroU32::new(burst).expect("burst"),
        })
    }

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let l = limiter(RateKey::ClientIp, 10, 20);
        let sec = 1_000_000_000;
        for i in 0..20 {
            assert_eq!(l.take(1, 0), Ok(()), "request {i} of the burst");
        }
        assert_eq!(l.take(1, 0), Err(1), "the 21st waits");
        assert_eq!(l.take(2, 0), Ok(()), "another key has its own bucket");
        // A tenth of a second later, one more request has been earned.
        assert_eq!(l.take(1, sec / 10), Ok(()));
        assert!(l.take(1, sec / 10).is_err());
        // After two idle seconds the bucket is full again, and no fuller.
        for _ in 0..20 {
            assert_eq!(l.take(1, 3 * sec), Ok(()));
        }
        assert!(l.take(1, 3 * sec).is_err());
    }

    #[test]
    fn the_wait_says_when_a_request_will_pass() {
        let l = limiter(RateKey::ClientIp, 1, 1);
        assert_eq!(l.take(1, 0), Ok(()));
        assert_eq!(l.take(1, 0), Err(1));
        assert_eq!(l.take(1, 1_000_000_000), Ok(()));
    }

    #[test]
    fn keys_are_clients_by_slash_64_or_a_header() {
        let l = limiter(RateKey::ClientIp, 1, 1);
        let none = HeaderMap::new();
        assert!(l.check("fd00:1:2:3::1".parse().expect("ip"), &none).is_ok());
        assert!(
            l.check("fd00:1:2:3::2".parse().expect("ip"), &none)
                .is_err(),
            "the same /64"
        );
        assert!(l.check("fd00:1:2:4::1".parse().expect("ip"), &none).is_ok());
        assert!(l.check("198.18.0.1".parse().expect("ip"), &none).is_ok());
        assert!(
            l.check("::ffff:198.18.0.1".parse().expect("ip"), &none)
                .is_err(),
            "mapped is the same client"
        );

        let name = HeaderName::from_static("x-api-key");
        let h = RateKey::Header(name.clone());
        let l = limiter(h, 1, 1);
        let with = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(name.clone(), HeaderValue::from_str(v).expect("value"));
            m
        };
        let ip = "198.18.0.1".parse().expect("ip");
        assert!(l.check(ip, &with("a")).is_ok());
        assert!(l.check(ip, &with("a")).is_err());
        assert!(l.check(ip, &with("b")).is_ok(), "another key");
        assert!(l.check(ip, &none).is_ok());
        assert!(
            l.check("198.18.0.2".parse().expect("ip"), &none).is_err(),
            "no header: one shared bucket"
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = limiter(RateKey::ClientIp, 1, 1);
        for k in 0..(super::TABLE_SIZE as u64 + 100) {
            assert_eq!(l.take(k, 0), Ok(()));
        }
        assert!(l.table.lock().expect("lock").len() <= super::TABLE_SIZE);
    }
}
