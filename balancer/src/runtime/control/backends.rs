//! What the control loop knows of each backend, in one record: its status
//! (health, admin state, weight, ramp), when its slow-start ramp began and
//! when its drain timeout passes. Records are kept by pool, then backend,
//! in config order, and carried across a reload by pool name and address.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Instant,
};

use crate::{
    config::Config,
    runtime::{
        BackendStats, PoolState,
        state::{FULL, Health, Status},
    },
};

/// One backend as the control loop tracks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// Health, admin state, weight and ramp.
    pub status: Status,
    /// When its slow-start ramp began, while it ramps.
    pub ramp_since: Option<Instant>,
    /// When its drain timeout passes, while it drains with one.
    pub drain_until: Option<Instant>,
}

/// Every backend's record, by pool, then backend.
#[derive(Clone, Debug, Default)]
pub struct Backends(Vec<Vec<Tracked>>);

impl Backends {
    /// Every backend of `config` up and settled.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        Self(
            config
                .pools
                .iter()
                .map(|p| vec![Tracked::default(); p.backends.len()])
                .collect(),
        )
    }

    /// Backend `b` of pool `p`, if there is one.
    #[must_use]
    pub fn get(&self, p: usize, b: usize) -> Option<&Tracked> {
        self.0.get(p)?.get(b)
    }

    /// Backend `b` of pool `p`, to change. Panics on an index the config
    /// does not have: callers have checked it with [`Backends::get`] or
    /// walk the config.
    pub fn at(&mut self, p: usize, b: usize) -> &mut Tracked {
        &mut self.0[p][b]
    }

    /// The records of pool `p`.
    #[must_use]
    pub fn pool(&self, p: usize) -> &[Tracked] {
        &self.0[p]
    }

    /// Every (pool, backend) index pair.
    pub fn indices(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(p, v)| (0..v.len()).map(move |b| (p, b)))
    }

    /// Every backend's status, by pool, as the planes take it.
    #[must_use]
    pub fn statuses(&self) -> Vec<Vec<Status>> {
        self.0
            .iter()
            .map(|v| v.iter().map(|t| t.status).collect())
            .collect()
    }

    /// The records and counters for `new`, carried over from these (of
    /// `old`, whose live pools are `old_pools`) by pool name and address.
    /// A new backend gets fresh counters and starts up, except in a pool
    /// that has health checks and already had backends: there it starts
    /// down and takes traffic once its checks pass `rise` times, so a
    /// backend added by a reload or found by discovery is checked first (a
    /// new or empty pool starts up, as at start: nothing serves it yet).
    /// A ramp under way ends (the backend gets its full weight); a drain
    /// keeps its deadline.
    #[must_use]
    pub fn carry(
        &self,
        old: &Config,
        old_pools: &[Arc<PoolState>],
        new: &Config,
    ) -> (Backends, Vec<Vec<Arc<BackendStats>>>) {
        let mut carried: HashMap<(&str, SocketAddr), (Tracked, Arc<BackendStats>)> = HashMap::new();
        for ((p, live), records) in old.pools.iter().zip(old_pools).zip(&self.0) {
            for (b, t) in live.backends.iter().zip(records) {
                carried.insert((p.name.as_str(), b.address), (*t, b.stats.clone()));
            }
        }
        let served: HashSet<&str> = old
            .pools
            .iter()
            .filter(|p| !p.backends.is_empty())
            .map(|p| p.name.as_str())
            .collect();
        let (records, counters) = new
            .pools
            .iter()
            .map(|p| {
                let checked_first = p.health.is_some() && served.contains(p.name.as_str());
                p.backends
                    .iter()
                    .map(|b| {
                        let (t, stats) = carried
                            .get(&(p.name.as_str(), b.address))
                            .cloned()
                            .unwrap_or_else(|| {
                                let mut t = Tracked::default();
                                if checked_first {
                                    t.status.health = Health::Down;
                                }
                                (t, Arc::default())
                            });
                        let t = Tracked {
                            status: Status {
                                ramp: FULL,
                                ..t.status
                            },
                            ramp_since: None,
                            drain_until: t.drain_until,
                        };
                        (t, stats)
                    })
                    .unzip::<_, _, Vec<_>, Vec<_>>()
            })
            .unzip();
        (Backends(records), counters)
    }
}
