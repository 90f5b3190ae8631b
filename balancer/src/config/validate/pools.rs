//! The `pools` section and the backends in each: unique names, a Maglev
//! table that is prime and larger than the pool, and backends with unique
//! addresses and weights within [`MAX_WEIGHT`].

use std::collections::HashSet;

use super::{Problems, discover, health, http, pool_tls};
use crate::config::{
    defaults::{DEFAULT_ALGORITHM, DEFAULT_MAGLEV_TABLE, DEFAULT_WEIGHT},
    discover::Origin,
    limits::{MAX_BACKENDS, MAX_MAGLEV_TABLE, MAX_POOLS, MAX_WEIGHT},
    model::{Backend, Pool},
    raw::{RawBackend, RawPool},
    values,
};

/// Every pool, in file order.
pub(super) fn pools(raw: &[RawPool], p: &mut Problems) -> Vec<Pool> {
    p.at_most("pools", raw.len(), MAX_POOLS, "pools");
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, pool) in raw.iter().enumerate() {
        let at = |f: &str| format!("pools[{i}].{f}");
        p.unique_name(at("name"), &pool.name, &mut names, "pool");
        let algorithm = pool.algorithm.unwrap_or(DEFAULT_ALGORITHM);
        let table = pool.maglev_table_size.unwrap_or(DEFAULT_MAGLEV_TABLE);
        if !values::is_prime(table) || table > MAX_MAGLEV_TABLE {
            p.add(
                at("maglev_table_size"),
                format!("`{table}` must be a prime no larger than {MAX_MAGLEV_TABLE}"),
            );
        } else if table < pool.backends.len() as u64 {
            p.add(
                at("maglev_table_size"),
                format!(
                    "`{table}` is smaller than the pool's {} backends",
                    pool.backends.len()
                ),
            );
        }
        let health = pool
            .health
            .as_ref()
            .map(|h| health::health(h, &at("health"), p));
        let http = http::pool(&at, pool.http, pool.keepalive.as_ref(), p);
        let tls = pool.tls.as_ref().map(|t| pool_tls::pool(&at("tls"), t, p));
        pool_tls::version(&at, http.version, tls.is_some(), health.as_ref(), p);
        out.push(Pool {
            name: pool.name.clone(),
            algorithm,
            maglev_table_size: u32::try_from(table).unwrap_or(u32::MAX),
            health,
            slow_start: pool
                .slow_start
                .as_ref()
                .and_then(|s| p.check(&at("slow_start"), values::duration(s))),
            drain_timeout: pool
                .drain_timeout
                .as_ref()
                .and_then(|s| p.check(&at("drain_timeout"), values::duration(s))),
            backends: backends(&pool.backends, &at("backends"), pool.discover.is_some(), p),
            http,
            proxy_protocol: pool.proxy_protocol,
            tls,
            discover: pool
                .discover
                .as_ref()
                .map(|d| discover::discover(d, &at("discover"), (pool.backends.len(), table), p)),
        });
    }
    out
}

/// The backends at `at`; none is a problem unless the pool `discovers`
/// them.
pub(super) fn backends(
    raw: &[RawBackend],
    at: &str,
    discovers: bool,
    p: &mut Problems,
) -> Vec<Backend> {
    if raw.is_empty() && !discovers {
        p.add(
            at,
            "pool has no backends (expected at least one, or a `discover` source)",
        );
    }
    p.at_most(at, raw.len(), MAX_BACKENDS, "backends");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let address = p.check(
            &format!("{at}[{i}].address"),
            values::socket_addr(&b.address),
        );
        if let Some(a) = address
            && !seen.insert(a)
        {
            p.add(
                format!("{at}[{i}].address"),
                format!("`{a}` appears twice in this pool"),
            );
        }
        let weight = weight(b.weight, &format!("{at}[{i}].weight"), p);
        if let Some(address) = address {
            out.push(Backend {
                address,
                weight,
                origin: Origin::Static,
            });
        }
    }
    out
}

/// The file may write any integer; out-of-range ones are reported and
/// clamped so validation can go on.
pub(super) fn weight(raw: Option<i64>, at: &str, p: &mut Problems) -> u32 {
    let Some(weight) = raw else {
        return DEFAULT_WEIGHT;
    };
    u32::try_from(weight)
        .ok()
        .filter(|w| *w <= MAX_WEIGHT)
        .unwrap_or_else(|| {
            p.add(
                at,
                format!(
                    "`{weight}` is out of range (expected 0..={MAX_WEIGHT}; 0 drains the backend)"
                ),
            );
            u32::try_from(weight.clamp(0, i64::from(MAX_WEIGHT))).unwrap_or(0)
        })
}
