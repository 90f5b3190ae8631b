//! The control loop: the one owner of backend states. Check outcomes and
//! the failures the proxies see arrive as [`Event`]s; each moves its
//! backend's state machine, a change is logged once with its cause and
//! counted, and a change that matters to the data planes rebuilds the
//! backend's pool for the proxies (swapped in whole) and rewrites the XDP
//! maps.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{
    CheckRecord, LivePool, PoolState,
    state::{Admin, FULL, State, Status, Thresholds},
};
use crate::{config::Config, dataplane::xdp::plane::XdpPlane};

/// Room for events between the producers and the loop. Proxies never wait
/// for it: a passive report that finds it full is dropped, because the
/// active checks will tell the same story.
pub const EVENT_QUEUE: usize = 1024;

/// Something the control loop must hear about.
pub enum Event {
    /// An active check's outcome: its latency, or why it failed.
    Check {
        /// The config generation the check was started for; events of an
        /// older one (before a reload) are ignored.
        generation: u64,
        /// Pool index.
        pool: usize,
        /// Backend index in the pool.
        backend: usize,
        /// Outcome.
        outcome: Result<Duration, String>,
    },
    /// An operator's request, answered on `reply` with the backend's new
    /// state.
    Admin {
        /// Pool name.
        pool: String,
        /// Backend address.
        backend: SocketAddr,
        /// What to do.
        action: Action,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<State, AdminError>>,
    },
    /// A new config, validated: carry every backend's state and counters
    /// over to it (matched by pool name and address), rewrite the XDP maps,
    /// and swap in the new pools. Answered on `reply`; an error changes
    /// nothing.
    Reload {
        /// The new config.
        config: Arc<Config>,
        /// Its pools, by index (pools kept by name are the same `Arc`).
        pools: Vec<Arc<LivePool>>,
        /// Its generation.
        generation: u64,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A connection a proxy could not make (refused, timed out).
    Passive {
        /// The config generation of the reporting listener.
        generation: u64,
        /// Pool index.
        pool: usize,
        /// Backend index in the pool.
        backend: usize,
        /// What went wrong.
        error: String,
    },
}

/// What an operator asks of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No new flows; established ones carry on.
    Drain,
    /// Back to following its health checks.
    Enable,
    /// Out of rotation, established flows placed elsewhere (XDP).
    Disable,
    /// A new weight for new flows.
    Weight(u32),
}

/// Why an operator's request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such pool.
    #[error("no pool named `{0}`")]
    NoPool(String),
    /// No such backend in the pool.
    #[error("pool `{pool}` has no backend `{backend}`")]
    NoBackend {
        /// Pool name.
        pool: String,
        /// Address asked for.
        backend: SocketAddr,
    },
    /// Weight out of range.
    #[error("weight {0} is out of range; use 0 to {MAX_WEIGHT}")]
    BadWeight(u32),
}

/// How often slow-starting weights move.
const RAMP_TICK: Duration = Duration::from_millis(100);
/// The least change of a ramp (thousandths) worth rebuilding a pool for.
const RAMP_STEP: u16 = 50;

/// The largest weight, as in the config file.
pub const MAX_WEIGHT: u32 = 10_000;

/// Where a proxy reports the failures it sees for one pool.
#[derive(Clone, Debug)]
pub struct Passive {
    pool: usize,
    generation: u64,
    events: mpsc::Sender<Event>,
}

impl Passive {
    /// Reports to `events` for pool `pool` of config `generation`.
    #[must_use]
    pub fn new(pool: usize, generation: u64, events: mpsc::Sender<Event>) -> Self {
        Self {
            pool,
            generation,
            events,
        }
    }

    /// Backend `backend` failed with `error`. Never waits.
    pub fn report(&self, backend: usize, error: &str) {
        let _ = self.events.try_send(Event::Passive {
            generation: self.generation,
            pool: self.pool,
            backend,
            error: error.to_owned(),
        });
    }
}

/// The loop's state.
pub struct Control {
    generation: u64,
    config: Arc<Config>,
    pools: Vec<Arc<LivePool>>,
    status: Vec<Vec<Status>>,
    /// When each slow-starting backend began its ramp.
    ramping: Vec<Vec<Option<Instant>>>,
    xdp: Option<Arc<Mutex<XdpPlane>>>,
}

impl Control {
    /// Takes over the pools of `config` (every backend up).
    #[must_use]
    pub fn new(
        config: Arc<Config>,
        pools: Vec<Arc<LivePool>>,
        xdp: Option<Arc<Mutex<XdpPlane>>>,
    ) -> Self {
        let status = config
            .pools
            .iter()
            .map(|p| vec![Status::default(); p.backends.len()])
            .collect();
        let ramping = config
            .pools
            .iter()
            .map(|p| vec![None; p.backends.len()])
            .collect();
        Self {
            generation: 0,
            config,
            pools,
            status,
            ramping,
            xdp,
        }
    }

    /// Handles events until every sender is gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut ramp = tokio::time::interval(RAMP_TICK);
        ramp.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.handle(e),
                    None => return,
                },
                _ = ramp.tick() => self.tick(Instant::now()),
            }
        }
    }

    /// Moves every slow-starting backend's weight along to `now`.
    pub fn tick(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for (p, pool) in self.config.pools.iter().enumerate() {
            let Some(span) = pool.slow_start else {
                continue;
            };
            for b in 0..pool.backends.len() {
                let Some(since) = self.ramping[p][b] else {
                    continue;
                };
                let done = now.saturating_duration_since(since).as_secs_f64() / span.as_secs_f64();
                let ramp = if done >= 1.0 {
                    self.ramping[p][b] = None;
                    FULL
                } else {
                    // `done` is in [0, 1) here, so this fits a u16.
                    #[allow(clippy::cast_sign_loss)]
                    let r = (done * f64::from(FULL)) as u16;
                    r
                };
                // Rebuild only every few percent: a Maglev rebuild per
                // tick and backend would be waste.
                let s = &mut self.status[p][b];
                if ramp == FULL || ramp >= s.ramp + RAMP_STEP {
                    s.ramp = ramp;
                    if !changed.contains(&p) {
                        changed.push(p);
                    }
                }
            }
        }
        for p in changed {
            self.publish(p);
        }
    }

    /// Applies one event.
    pub fn handle(&mut self, event: Event) {
        let (p, b, ok, cause) = match event {
            Event::Admin {
                pool,
                backend,
                action,
                reply,
            } => {
                let _ = reply.send(self.admin(&pool, backend, action));
                return;
            }
            Event::Reload {
                config,
                pools,
                generation,
                reply,
            } => {
                let _ = reply.send(self.reload(config, pools, generation));
                return;
            }
            Event::Check {
                generation,
                pool,
                backend,
                outcome,
            } => {
                if generation != self.generation {
                    return;
                }
                self.record_check(pool, backend, &outcome);
                let ok = outcome.is_ok();
                let cause = match outcome {
                    Ok(_) => "check passed".to_owned(),
                    Err(e) => format!("check failed: {e}"),
                };
                (pool, backend, ok, cause)
            }
            Event::Passive {
                generation,
                pool,
                backend,
                error,
            } => {
                if generation != self.generation {
                    return;
                }
                let passive = self
                    .config
                    .pools
                    .get(pool)
                    .and_then(|p| p.health.as_ref())
                    .is_some_and(|h| h.passive);
                if !passive {
                    return;
                }
                (pool, backend, false, format!("proxy saw: {error}"))
            }
        };
        let Some(check) = self.config.pools.get(p).and_then(|x| x.health.as_ref()) else {
            return;
        };
        let Some(before) = self.status.get(p).and_then(|s| s.get(b)).copied() else {
            return;
        };
        let t = Thresholds {
            rise: check.rise.get(),
            fall: check.fall.get(),
        };
        let after = Status {
            health: before.health.step(ok, t),
            ..before
        };
        if after == before {
            return;
        }
        self.status[p][b] = after;
        let (pool, address) = {
            let cfg = &self.config.pools[p];
            (cfg.name.clone(), cfg.backends[b].address)
        };
        if before.state() != after.state() {
            if let Some(stats) = self.stats(p, b) {
                stats.state_changes.fetch_add(1, Ordering::Relaxed);
            }
            if after.takes_new_flows() {
                info!(%pool, backend = %address, from = %before.state(), to = %after.state(), %cause, "backend state changed");
            } else {
                warn!(%pool, backend = %address, from = %before.state(), to = %after.state(), %cause, "backend state changed");
            }
        }
        if !before.takes_new_flows() && after.takes_new_flows() {
            self.start_ramp(p, b, Instant::now());
        }
        if before.takes_new_flows() != after.takes_new_flows()
            || before.keeps_flows() != after.keeps_flows()
        {
            self.publish(p);
        }
    }

    /// A backend of a pool with `slow_start` starts taking new flows: its
    /// weight starts small and grows on each [`Control::tick`].
    fn start_ramp(&mut self, p: usize, b: usize, now: Instant) {
        if self.config.pools[p].slow_start.is_some() {
            self.ramping[p][b] = Some(now);
            self.status[p][b].ramp = 0;
        }
    }

    /// Counts a check's outcome in its backend's statistics.
    fn record_check(&self, pool: usize, backend: usize, outcome: &Result<Duration, String>) {
        let Some(stats) = self.stats(pool, backend) else {
            return;
        };
        stats.checks.fetch_add(1, Ordering::Relaxed);
        let record = match outcome {
            Ok(latency) => {
                stats.check_latency.observe(*latency);
                CheckRecord {
                    latency: Some(*latency),
                    error: None,
                }
            }
            Err(e) => {
                stats.checks_failed.fetch_add(1, Ordering::Relaxed);
                CheckRecord {
                    latency: None,
                    error: Some(e.clone()),
                }
            }
        };
        if let Ok(mut last) = stats.last_check.lock() {
            *last = Some(record);
        }
    }

    /// Carries out an operator's `action` on `backend` of `pool`.
    pub fn admin(
        &mut self,
        pool: &str,
        backend: SocketAddr,
        action: Action,
    ) -> Result<State, AdminError> {
        let p = self
            .config
            .pools
            .iter()
            .position(|x| x.name == pool)
            .ok_or_else(|| AdminError::NoPool(pool.to_owned()))?;
        let b = self.config.pools[p]
            .backends
            .iter()
            .position(|x| x.address == backend)
            .ok_or_else(|| AdminError::NoBackend {
                pool: pool.to_owned(),
                backend,
            })?;
        let before = self.status[p][b];
        let mut after = before;
        match action {
            Action::Drain => after.admin = Admin::Draining,
            Action::Enable => after.admin = Admin::Enabled,
            Action::Disable => after.admin = Admin::Disabled,
            Action::Weight(w) if w > MAX_WEIGHT => return Err(AdminError::BadWeight(w)),
            Action::Weight(w) => after.weight = Some(w),
        }
        if after != before {
            self.status[p][b] = after;
            if !before.takes_new_flows() && after.takes_new_flows() {
                self.start_ramp(p, b, Instant::now());
            }
            if before.state() != after.state()
                && let Some(stats) = self.stats(p, b)
            {
                stats.state_changes.fetch_add(1, Ordering::Relaxed);
            }
            info!(%pool, %backend, from = %before.state(), to = %after.state(), ?action, "operator changed a backend");
            self.publish(p);
        }
        Ok(after.state())
    }

    /// Moves to `config` (see [`Event::Reload`]).
    pub fn reload(
        &mut self,
        config: Arc<Config>,
        pools: Vec<Arc<LivePool>>,
        generation: u64,
    ) -> Result<(), String> {
        let mut carried: HashMap<(&str, SocketAddr), (Status, Arc<super::BackendStats>)> =
            HashMap::new();
        let old_pools: Vec<_> = self.pools.iter().map(|p| p.load_full()).collect();
        for ((p, live), states) in self.config.pools.iter().zip(&old_pools).zip(&self.status) {
            for (b, s) in live.backends.iter().zip(states) {
                carried.insert((p.name.as_str(), b.address), (*s, b.stats.clone()));
            }
        }
        let mut status = Vec::with_capacity(config.pools.len());
        let mut counters = Vec::with_capacity(config.pools.len());
        for p in &config.pools {
            let (s, st): (Vec<_>, Vec<_>) = p
                .backends
                .iter()
                .map(|b| {
                    let (s, st) = carried
                        .get(&(p.name.as_str(), b.address))
                        .cloned()
                        .unwrap_or_default();
                    (Status { ramp: FULL, ..s }, st)
                })
                .unzip();
            status.push(s);
            counters.push(st);
        }
        if let Some(xdp) = &self.xdp {
            let mut plane = xdp
                .lock()
                .map_err(|_| "the XDP plane is unusable after an earlier failure".to_owned())?;
            plane.reload(&config, &status).map_err(|e| e.to_string())?;
        }
        for ((p, live), (s, st)) in config
            .pools
            .iter()
            .zip(&pools)
            .zip(status.iter().zip(&counters))
        {
            live.store(Arc::new(PoolState::build(p, s, st)));
        }
        // A ramp under way ends at a reload: the backend gets its full
        // weight, as in the carried status.
        self.ramping = config
            .pools
            .iter()
            .map(|p| vec![None; p.backends.len()])
            .collect();
        self.config = config;
        self.pools = pools;
        self.status = status;
        self.generation = generation;
        Ok(())
    }

    /// The state of every backend, by pool.
    #[must_use]
    pub fn status(&self) -> &[Vec<Status>] {
        &self.status
    }

    fn stats(&self, pool: usize, backend: usize) -> Option<Arc<super::BackendStats>> {
        let live = self.pools.get(pool)?.load();
        live.backends.get(backend).map(|b| b.stats.clone())
    }

    /// Rebuilds pool `p` for the proxies and rewrites the XDP maps.
    fn publish(&self, p: usize) {
        let live = &self.pools[p];
        let stats: Vec<_> = live
            .load()
            .backends
            .iter()
            .map(|b| b.stats.clone())
            .collect();
        live.store(Arc::new(PoolState::build(
            &self.config.pools[p],
            &self.status[p],
            &stats,
        )));
        if let Some(xdp) = &self.xdp {
            let result = match xdp.lock() {
                Ok(mut plane) => plane.update(&self.config, &self.status),
                Err(_) => return,
            };
            if let Err(e) = result {
                warn!(pool = %self.config.pools[p].name, error = %e, "cannot rewrite the XDP maps for a backend state change; the kernel keeps the previous tables");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use arc_swap::ArcSwap;
    use balancer_common::FlowTuple;

    use super::{Control, Event};
    use crate::{
        config,
        runtime::{PoolState, state::State},
    };

    fn setup(passive: bool) -> (Control, Arc<super::LivePool>) {
        let yaml = format!(
            "version: 1
listeners:
  - {{ name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }}
pools:
  - name: web
    algorithm: maglev
    health: {{ kind: tcp, rise: 2, fall: 2, passive: {passive} }}
    backends: [{{ address: 127.0.0.1:9001 }}, {{ address: 127.0.0.1:9002 }}]
"
        );
        let config = Arc::new(config::parse(&yaml, "t.yaml").expect("config"));
        let pool = Arc::new(ArcSwap::from_pointee(PoolState::new(&config.pools[0])));
        (Control::new(config, vec![pool.clone()], None), pool)
    }

    fn check(backend: usize, ok: bool) -> Event {
        Event::Check {
            generation: 0,
            pool: 0,
            backend,
            outcome: if ok {
                Ok(Duration::from_millis(1))
            } else {
                Err("connect: refused".into())
            },
        }
    }

    /// The backends new flows may reach, over many flows.
    fn reachable(pool: &super::LivePool) -> Vec<usize> {
        let p = pool.load();
        let mut seen: Vec<usize> = (0..200u16)
            .filter_map(|port| {
                let flow = FlowTuple {
                    src: FlowTuple::v4_mapped([198, 18, 0, 1]),
                    dst: FlowTuple::v4_mapped([127, 0, 0, 1]),
                    src_port: port,
                    dst_port: 8080,
                    protocol: 6,
                    pad: [0; 3],
                };
                p.pick(&flow, &[])
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    #[test]
    fn a_backend_leaves_after_fall_failures_and_returns_after_rise_passes() {
        let (mut c, pool) = setup(true);
        assert_eq!(reachable(&pool), [0, 1]);
        c.handle(check(1, false));
        assert_eq!(c.status()[0][1].state(), State::Falling);
        assert_eq!(reachable(&pool), [0, 1], "falling still serves");
        c.handle(check(1, false));
        assert_eq!(c.status()[0][1].state(), State::Down);
        assert_eq!(reachable(&pool), [0]);
        let b = &pool.load().backends[1];
        assert_eq!(b.weight, 0);
        assert_eq!(
            b.stats
                .state_changes
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        assert_eq!(
            b.stats
                .checks_failed
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        c.handle(check(1, true));
        assert_eq!(c.status()[0][1].state(), State::Rising);
        assert_eq!(reachable(&pool), [0]);
        c.handle(check(1, true));
        assert_eq!(reachable(&pool), [0, 1]);
        assert_eq!(pool.load().backends[1].weight, 100);
    }

    #[test]
    fn proxy_failures_count_toward_fall_only_when_passive() {
        let passive = |backend| Event::Passive {
            generation: 0,
            pool: 0,
            backend,
            error: "connect: refused".into(),
        };
        let (mut on, pool) = setup(true);
        on.handle(passive(0));
        on.handle(passive(0));
        assert_eq!(on.status()[0][0].state(), State::Down);
        assert_eq!(reachable(&pool), [1]);
        let (mut off, pool) = setup(false);
        off.handle(passive(0));
        off.handle(passive(0));
        assert_eq!(off.status()[0][0].state(), State::Up);
        assert_eq!(reachable(&pool), [0, 1]);
    }

    #[test]
    fn operators_drain_disable_enable_and_reweigh() {
        use super::{Action, AdminError};
        let (mut c, pool) = setup(true);
        let b1 = "127.0.0.1:9002".parse().expect("addr");
        assert_eq!(c.admin("web", b1, Action::Drain), Ok(State::Draining));
        assert_eq!(reachable(&pool), [0]);
        assert_eq!(c.admin("web", b1, Action::Enable), Ok(State::Up));
        assert_eq!(reachable(&pool), [0, 1]);
        assert_eq!(c.admin("web", b1, Action::Disable), Ok(State::Disabled));
        assert_eq!(reachable(&pool), [0]);
        c.admin("web", b1, Action::Enable).expect("enable");
        assert_eq!(c.admin("web", b1, Action::Weight(7)), Ok(State::Up));
        assert_eq!(pool.load().backends[1].weight, 7);
        assert_eq!(
            c.admin("web", b1, Action::Weight(10_001)),
            Err(AdminError::BadWeight(10_001))
        );
        assert_eq!(
            c.admin("nope", b1, Action::Drain),
            Err(AdminError::NoPool("nope".into()))
        );
        let other = "127.0.0.1:9".parse().expect("addr");
        assert!(matches!(
            c.admin("web", other, Action::Drain),
            Err(AdminError::NoBackend { .. })
        ));
        // A drained backend that fails its checks goes down, and comes
        // back drained.
        c.admin("web", b1, Action::Drain).expect("drain");
        c.handle(check(1, false));
        c.handle(check(1, false));
        assert_eq!(c.status()[0][1].state(), State::Down);
        c.handle(check(1, true));
        c.handle(check(1, true));
        assert_eq!(c.status()[0][1].state(), State::Draining);
    }

    /// With `slow_start`, a backend that comes back up gets a small weight
    /// that grows linearly to its full weight over the configured time.
    #[test]
    fn slow_start_ramps_a_returning_backends_weight() {
        let yaml = "version: 1
listeners:
  - { name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }
pools:
  - name: web
    algorithm: round_robin
    slow_start: 10s
    health: { kind: tcp, rise: 1, fall: 1 }
    backends: [{ address: 127.0.0.1:9001, weight: 200 }, { address: 127.0.0.1:9002, weight: 200 }]
";
        let config = Arc::new(config::parse(yaml, "t.yaml").expect("config"));
        let pool = Arc::new(ArcSwap::from_pointee(PoolState::new(&config.pools[0])));
        let mut c = Control::new(config, vec![pool.clone()], None);
        c.handle(check(1, false));
        assert_eq!(pool.load().backends[1].weight, 0);
        let back = std::time::Instant::now();
        c.handle(check(1, true));
        assert_eq!(
            pool.load().backends[1].weight,
            1,
            "starts at the least weight"
        );
        c.tick(back + Duration::from_secs(5));
        let half = pool.load().backends[1].weight;
        assert!((95..=105).contains(&half), "about half way: {half}");
        c.tick(back + Duration::from_secs(11));
        assert_eq!(pool.load().backends[1].weight, 200);
        assert_eq!(
            pool.load().backends[0].weight,
            200,
            "the other never ramped"
        );
    }

    #[test]
    fn events_for_unknown_pools_or_backends_change_nothing() {
        let (mut c, pool) = setup(true);
        c.handle(Event::Check {
            generation: 0,
            pool: 7,
            backend: 0,
            outcome: Err("x".into()),
        });
        c.handle(check(9, false));
        assert_eq!(reachable(&pool), [0, 1]);
    }
}
