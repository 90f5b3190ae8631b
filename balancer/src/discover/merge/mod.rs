//! The config the daemon serves: the file's config with each discovering
//! pool's backends extended by what its sources last found. Static
//! backends come first and win over a discovered one at the same address;
//! the discovered ones follow in address order (so a reordered answer
//! changes nothing), cut at the pool's `max_backends`. A pool that an XDP
//! listener serves takes only backends on that listener's port, as the
//! kernel plane forwards packets unchanged. A source that has not
//! answered yet (one a reload just named) leaves the pool the backends of
//! that kind it was serving, so a changed setting does not empty the pool
//! while the new task asks for the first time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::SocketAddr;

use super::{Found, SourceKey};
use crate::config::{
    Config,
    discover::{Discover, Origin, RecordKind},
    model::{Backend, Pool},
};
use crate::dataplane::xdp::plane::served_flags;

/// What merging left out of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Backends over `max_backends`.
    pub cut: usize,
    /// Backends on another port than the pool's XDP listener's.
    pub wrong_port: usize,
}

/// `file` with every discovering pool's backends from `found`. `xdp_ports`
/// gives, by pool index, the port of an XDP listener the pool serves;
/// `serving` is the config served now, whose discovered backends stand in
/// for a source with nothing in `found` yet. Returns the config and, by
/// pool name, what was left out.
#[must_use]
pub fn merge<S: BuildHasher>(
    file: &Config,
    found: &HashMap<SourceKey, Found, S>,
    xdp_ports: &[Option<u16>],
    serving: Option<&Config>,
) -> (Config, BTreeMap<String, Left>) {
    let mut config = file.clone();
    let mut left = BTreeMap::new();
    for (i, pool) in config.pools.iter_mut().enumerate() {
        let Some(discover) = &pool.discover else {
            continue;
        };
        let before = serving
            .and_then(|c| c.pools.iter().find(|p| p.name == pool.name))
            .map_or(&[][..], |p| p.backends.as_slice());
        let discovered = discovered(discover, found, before);
        let xdp_port = xdp_ports.get(i).copied().flatten();
        let (backends, l) = finish(pool, discovered, discover.max_backends, xdp_port);
        pool.backends = backends;
        left.insert(pool.name.clone(), l);
    }
    (config, left)
}

/// What `discover`'s sources found, by address, the file's first, then
/// DNS's; a source with nothing in `found` yet gives the backends of its
/// kind in `before` (what the pool serves now).
fn discovered<S: BuildHasher>(
    discover: &Discover,
    found: &HashMap<SourceKey, Found, S>,
    before: &[Backend],
) -> BTreeMap<SocketAddr, Backend> {
    let mut out: BTreeMap<SocketAddr, Backend> = BTreeMap::new();
    let mut add = |b: Backend| {
        out.entry(b.address).or_insert(b);
    };
    let kept = |origin: Origin| before.iter().filter(move |b| b.origin == origin).copied();
    if let Some(path) = &discover.file {
        match found.get(&SourceKey::File(path.clone())) {
            Some(Found::File(set)) => set.iter().copied().for_each(&mut add),
            _ => kept(Origin::File).for_each(&mut add),
        }
    }
    if let Some(dns) = &discover.dns {
        match found.get(&SourceKey::Dns(dns.query.clone())) {
            Some(Found::Dns(answer)) => {
                for t in &answer.targets {
                    let port = match dns.query.record {
                        RecordKind::SRV => t.port,
                        RecordKind::A | RecordKind::AAAA => dns.port,
                    };
                    if let Some(port) = port {
                        add(Backend {
                            address: SocketAddr::new(t.ip, port),
                            weight: t.weight.unwrap_or(dns.weight),
                            origin: Origin::Dns,
                        });
                    }
                }
            }
            _ => kept(Origin::Dns).for_each(&mut add),
        }
    }
    out
}

/// The pool's static backends, then `discovered` as far as the port and
/// the cap allow.
fn finish(
    pool: &Pool,
    discovered: BTreeMap<SocketAddr, Backend>,
    max: usize,
    xdp_port: Option<u16>,
) -> (Vec<Backend>, Left) {
    let statics: HashSet<SocketAddr> = pool.backends.iter().map(|b| b.address).collect();
    let mut left = Left::default();
    let mut out = pool.backends.clone();
    let mut taken = 0;
    for (address, b) in discovered {
        if statics.contains(&address) {
            continue;
        }
        if xdp_port.is_some_and(|p| p != address.port()) {
            left.wrong_port += 1;
            continue;
        }
        if taken == max {
            left.cut += 1;
            continue;
        }
        taken += 1;
        out.push(b);
    }
    (out, left)
}

/// By pool index, the port of an XDP listener that serves the pool, when
/// the XDP plane runs (`xdp_running`): what [`merge`] holds a pool's
/// discovered backends to.
#[must_use]
pub fn xdp_ports(config: &Config, xdp_running: bool) -> Vec<Option<u16>> {
    let served = served_flags(xdp_running, config);
    let mut ports = vec![None; config.pools.len()];
    for (l, served) in config.listeners.iter().zip(served) {
        if served && let Some(p) = l.pool {
            ports[p] = Some(l.address.port());
        }
    }
    ports
}

#[cfg(test)]
mod tests;
