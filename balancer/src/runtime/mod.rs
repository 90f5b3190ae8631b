//! Runtime state built from a validated [`Config`]: per pool, the backends
//! with their live counters and the selector. The data planes read it; only
//! the control plane builds it. Counters are shared (`Arc`) so a later
//! snapshot of the same backend keeps its numbers.

pub mod attempt;
pub mod control;
pub mod events;
pub mod failure;
pub mod guard_lists;
mod histogram;
pub mod http_stats;
pub mod plane;
pub mod state;
mod stats;
pub mod tls_stats;
mod tracker;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// `CLOCK_MONOTONIC` in nanoseconds, as a number (std's `Instant` is
/// opaque): the clock `bpf_ktime_get_ns` reads and systemd's
/// `MONOTONIC_USEC` is measured on.
#[must_use]
#[expect(
    unsafe_code,
    reason = "clock_gettime(2) has no std wrapper that yields a number"
)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

use arc_swap::ArcSwap;
use balancer_common::{FlowTuple, flow_hash, hash::addr_hash};

pub use histogram::LatencyHistogram;
pub use stats::{ActiveGuard, BackendStats, CheckRecord, ListenerStats, LogLimiter};
pub use tracker::{ConnectionGuard, Tracker};

use crate::{
    config::model::{Algorithm, Pool},
    select::{self, Request, Selector},
};

/// One backend as the data planes see it.
pub struct BackendState {
    /// Where to connect.
    pub address: SocketAddr,
    /// Weight for new flows now: the configured one, or 0 while the
    /// backend takes no new flows.
    pub weight: u32,
    /// Health and admin state.
    pub status: state::Status,
    /// Live counters.
    pub stats: Arc<BackendStats>,
}

/// A pool the control plane replaces as a whole when a backend's state
/// changes; the proxies load the current one per new connection.
pub type LivePool = ArcSwap<PoolState>;

/// A pool ready to serve: backends plus the selector built over them.
pub struct PoolState {
    /// Pool name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Backends, in config order (selector indices point here).
    pub backends: Vec<BackendState>,
    /// The PROXY header its backends want first on every connection.
    pub proxy_protocol: Option<crate::config::model::ProxyVersion>,
    selector: Box<dyn Selector>,
}

impl PoolState {
    /// Builds a pool from its validated config, every backend up, with
    /// fresh counters.
    #[must_use]
    pub fn new(pool: &Pool) -> Self {
        let states = vec![state::Status::default(); pool.backends.len()];
        let counters: Vec<_> = pool
            .backends
            .iter()
            .map(|_| Arc::new(BackendStats::default()))
            .collect();
        Self::build(pool, &states, &counters)
    }

    /// Builds a pool whose backends are in `states` and keep the counters
    /// `counters` (both in config order). A backend that takes no new flows
    /// gets weight 0: the selector passes over it, and Maglev's table is
    /// the one the XDP plane builds without it.
    #[must_use]
    pub fn build(pool: &Pool, states: &[state::Status], counters: &[Arc<BackendStats>]) -> Self {
        let backends: Vec<BackendState> = pool
            .backends
            .iter()
            .zip(states)
            .zip(counters)
            .map(|((b, s), st)| BackendState {
                address: b.address,
                weight: s.new_flow_weight(b.weight),
                status: *s,
                stats: st.clone(),
            })
            .collect();
        let members: Vec<select::Member> = backends
            .iter()
            .map(|b| select::Member {
                address: b.address,
                weight: b.weight,
            })
            .collect();
        Self {
            name: pool.name.clone(),
            algorithm: pool.algorithm,
            backends,
            proxy_protocol: pool.proxy_protocol,
            selector: select::build(pool.algorithm, &members, pool.maglev_table_size),
        }
    }

    /// Chooses a backend for `flow`, passing over the indices in `tried`.
    #[must_use]
    pub fn pick(&self, flow: &FlowTuple, tried: &[usize]) -> Option<usize> {
        let load = |i: usize| self.backends[i].stats.active();
        self.selector.select(&Request {
            flow_hash: flow_hash(flow, 0),
            source_hash: addr_hash(&flow.src, 0),
            skip: &|i| tried.contains(&i),
            load: &load,
        })
    }
}

/// The 5-tuple of a proxied flow, in the layout the flow hash expects. A
/// v4-mapped IPv6 address (from a dual-stack socket) hashes as the IPv4
/// address it is, so a client maps the same way on either kind of socket.
#[must_use]
pub fn flow_tuple(client: SocketAddr, local: SocketAddr, protocol: u8) -> FlowTuple {
    let bytes = |a: SocketAddr| match a.ip().to_canonical() {
        IpAddr::V4(v4) => FlowTuple::v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    };
    FlowTuple {
        src: bytes(client),
        dst: bytes(local),
        src_port: client.port(),
        dst_port: local.port(),
        protocol,
        pad: [0; 3],
    }
}
