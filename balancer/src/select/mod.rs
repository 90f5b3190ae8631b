//! Backend selection: one [`Selector`] trait, six algorithms. A selector is
//! built from a pool's backends and weights and is immutable afterwards
//! (interior counters aside); a weight change builds a new one. Live load
//! (active connections) and exclusions (backends already tried for this
//! client) come from the caller through [`Request`], so selectors hold no
//! runtime state of their own.

mod least_conn;
mod maglev;
mod round_robin;
mod source_hash;
mod two_choices;
mod wrr;

#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
};

pub use maglev::MaglevTable;

use crate::config::model::Algorithm;

/// What a selector knows about one backend when it is built.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    /// Backend address; hashing algorithms derive the backend's identity from it.
    pub address: SocketAddr,
    /// Relative weight; 0 means never chosen for new flows (draining).
    pub weight: u32,
}

/// One new flow asking for a backend.
pub struct Request<'a> {
    /// `balancer_common::flow_hash` of the flow's 5-tuple.
    pub flow_hash: u32,
    /// Hash of the client address alone.
    pub source_hash: u32,
    /// Backends to pass over (already failed for this client, or down).
    pub skip: &'a dyn Fn(usize) -> bool,
    /// Active connections of a backend, for load-aware algorithms.
    pub load: &'a dyn Fn(usize) -> u64,
}

/// Chooses a backend index for a new flow.
pub trait Selector: Send + Sync {
    /// Index into the members the selector was built from, or `None` when every
    /// member is skipped or has weight 0.
    fn select(&self, req: &Request<'_>) -> Option<usize>;
}

/// The members of a configured pool, in config order.
#[must_use]
pub fn members(pool: &crate::config::model::Pool) -> Vec<Member> {
    pool.backends
        .iter()
        .map(|b| Member {
            address: b.address,
            weight: b.weight,
        })
        .collect()
}

/// A starting point that moves one backend further on every scan, so
/// equal choices spread over the pool instead of piling on the first.
#[derive(Default)]
struct Rotation(AtomicUsize);

impl Rotation {
    /// The indices `0..n` in scan order, from one further than the last
    /// scan's start.
    fn order(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = if n == 0 {
            0
        } else {
            self.0.fetch_add(1, Ordering::Relaxed)
        };
        (0..n).map(move |k| (start + k) % n)
    }
}

/// Builds the selector for `algorithm`. `maglev_table_size` must be prime
/// (the config validator guarantees it).
#[must_use]
pub fn build(
    algorithm: Algorithm,
    members: &[Member],
    maglev_table_size: u32,
) -> Box<dyn Selector> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(round_robin::RoundRobin::new(members)),
        Algorithm::WeightedRoundRobin => Box::new(wrr::SmoothWeighted::new(members)),
        Algorithm::LeastConnections => Box::new(least_conn::LeastConnections::new(members)),
        Algorithm::SourceHash => Box::new(source_hash::SourceHash::new(members)),
        Algorithm::Maglev => Box::new(maglev::Maglev::new(members, maglev_table_size)),
        Algorithm::TwoChoices => Box::new(two_choices::TwoChoices::new(members)),
    }
}

/// A cheap, well-mixed 32-bit step used to derive retry hashes and
/// tie-breaks; not for anything that must be pinned across versions.
#[inline]
fn remix(x: u32) -> u32 {
    let mut h = x.wrapping_add(0x9e37_79b9);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
