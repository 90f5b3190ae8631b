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

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    CheckRecord, LivePool, PoolState,
    guard_lists::{ListChange, ListError, Lists},
    state::{Admin, FULL, State, Status, Thresholds},
};
use crate::{config::Config, dataplane::xdp::plane::XdpPlane};

/// How often slow-starting weights move.
const RAMP_TICK: Duration = Duration::from_millis(100);
/// The least change of a ramp (thousandths) worth rebuilding a pool for.
const RAMP_STEP: u16 = 50;

pub use super::events::{Action, AdminError, EVENT_QUEUE, Event, GuardAnswer, MAX_WEIGHT, Passive};

/// The loop's state.
pub struct Control {
    generation: u64,
    /// The config as read, then with the guard list entries added through
    /// the admin API: what the data planes are given.
    file: Arc<Config>,
    config: Arc<Config>,
    lists: Lists,
    pools: Vec<Arc<LivePool>>,
    status: Vec<Vec<Status>>,
    /// When each slow-starting backend began its ramp.
    ramping: Vec<Vec<Option<Instant>>>,
    /// When each drained backend's drain timeout passes.
    draining: Vec<Vec<Option<Instant>>>,
    /// Backends a reload removed, and when their connections close.
    leaving: Vec<(Instant, Arc<super::BackendStats>)>,
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
        let none: Vec<Vec<Option<Instant>>> = config
            .pools
            .iter()
            .map(|p| vec![None; p.backends.len()])
            .collect();
        Self {
            generation: 0,
            file: config.clone(),
            config,
            lists: Lists::default(),
            pools,
            status,
            ramping: none.clone(),
            draining: none,
            leaving: Vec::new(),
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

    /// Moves every slow-starting backend's weight along to `now`, and ends
    /// the drains whose timeout has passed.
    pub fn tick(&mut self, now: Instant) {
        self.end_drains(now);
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
            Event::Guard { change, reply } => {
                let _ = reply.send(self.guard(&change));
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
        self.observe(p, b, ok, &cause);
    }

    /// Steps backend `b` of pool `p` by one check outcome or proxy failure
    /// (`ok`, because of `cause`); a change reaches the planes, then the log.
    fn observe(&mut self, p: usize, b: usize, ok: bool, cause: &str) {
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
        if !before.takes_new_flows() && after.takes_new_flows() {
            self.start_ramp(p, b, Instant::now());
        }
        // The planes first, then the log: a logged change is in effect.
        if before.takes_new_flows() != after.takes_new_flows()
            || before.keeps_flows() != after.keeps_flows()
        {
            self.publish(p);
        }
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
    }

    /// Drains past their timeout end: the backend is disabled (the XDP
    /// plane places its flows again) and its proxied connections close.
    fn end_drains(&mut self, now: Instant) {
        self.leaving.retain(|(at, stats)| {
            if *at <= now {
                stats.cut.notify_waiters();
            }
            *at > now
        });
        let mut changed = Vec::new();
        for p in 0..self.draining.len() {
            for b in 0..self.draining[p].len() {
                if self.draining[p][b].is_none_or(|at| at > now) {
                    continue;
                }
                self.draining[p][b] = None;
                let before = self.status[p][b];
                if before.admin != Admin::Draining {
                    continue;
                }
                self.status[p][b].admin = Admin::Disabled;
                let pool = &self.config.pools[p];
                warn!(pool = %pool.name, backend = %pool.backends[b].address, from = %before.state(), to = %self.status[p][b].state(),
                    "drain timeout passed: closing the backend's remaining connections");
                if let Some(stats) = self.stats(p, b) {
                    stats.state_changes.fetch_add(1, Ordering::Relaxed);
                    stats.cut.notify_waiters();
                }
                changed.push(p);
            }
        }
        changed.dedup();
        for p in changed {
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
        let timeout = self.config.pools[p].drain_timeout;
        match action {
            Action::Drain => {
                after.admin = Admin::Draining;
                if before.admin != Admin::Draining {
                    self.draining[p][b] = timeout.map(|t| Instant::now() + t);
                }
            }
            Action::Enable => {
                after.admin = Admin::Enabled;
                self.draining[p][b] = None;
            }
            Action::Disable => {
                after.admin = Admin::Disabled;
                self.draining[p][b] = None;
            }
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
            self.publish(p);
            info!(%pool, %backend, from = %before.state(), to = %after.state(), ?action, "operator changed a backend");
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
        let (lists, dropped) = self.lists.rebase(&config);
        let file = config;
        let config = if lists.added().is_empty() {
            file.clone()
        } else {
            Arc::new(lists.apply(&file))
        };
        if let Some(xdp) = &self.xdp {
            let mut plane = xdp
                .lock()
                .map_err(|_| "the XDP plane is unusable after an earlier failure".to_owned())?;
            plane.reload(&config, &status).map_err(|e| e.to_string())?;
        }
        for why in dropped {
            warn!("{why}");
        }
        self.lists = lists;
        self.file = file;
        self.carry_drains(&config, &old_pools);
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

    /// Shows or changes the guard lists; a change is written to the XDP
    /// maps before it is kept, so a refused write changes nothing.
    pub fn guard(&mut self, change: &ListChange) -> Result<GuardAnswer, ListError> {
        let Some(next) = self.lists.change(&self.file, change)? else {
            return Ok(GuardAnswer {
                changed: false,
                lists: self.lists.view(&self.file),
            });
        };
        let xdp = self.xdp.as_ref().ok_or(ListError::NoXdp)?;
        let config = Arc::new(next.apply(&self.file));
        {
            let mut plane = xdp.lock().map_err(|_| {
                ListError::Write("an earlier failure left the XDP plane locked".to_owned())
            })?;
            plane
                .update(&config, &self.status)
                .map_err(|e| ListError::Write(e.to_string()))?;
        }
        info!(?change, "operator changed the guard lists");
        self.lists = next;
        self.config = config;
        Ok(GuardAnswer {
            changed: true,
            lists: self.lists.view(&self.file),
        })
    }

    /// At a reload: backends gone from the config get no new flows, and
    /// their open connections close after the old pool's drain timeout, if
    /// it has one; drains under way keep their deadlines.
    fn carry_drains(&mut self, config: &Config, old_pools: &[Arc<PoolState>]) {
        let now = Instant::now();
        for (p, live) in self.config.pools.iter().zip(old_pools) {
            let Some(timeout) = p.drain_timeout else {
                continue;
            };
            let kept = config.pools.iter().find(|n| n.name == p.name);
            for b in &live.backends {
                if !kept.is_some_and(|n| n.backends.iter().any(|x| x.address == b.address)) {
                    self.leaving.push((now + timeout, b.stats.clone()));
                }
            }
        }
        let deadlines: HashMap<(&str, SocketAddr), Instant> = self
            .config
            .pools
            .iter()
            .zip(&self.draining)
            .flat_map(|(p, d)| {
                p.backends
                    .iter()
                    .zip(d)
                    .filter_map(|(b, at)| at.map(|at| ((p.name.as_str(), b.address), at)))
            })
            .collect();
        let draining = config
            .pools
            .iter()
            .map(|p| {
                p.backends
                    .iter()
                    .map(|b| deadlines.get(&(p.name.as_str(), b.address)).copied())
                    .collect()
            })
            .collect();
        self.draining = draining;
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
            let Ok(mut plane) = xdp.lock() else {
                warn!(pool = %self.config.pools[p].name, "cannot rewrite the XDP maps: an earlier failure left them locked; restart the daemon");
                return;
            };
            let result = plane.update(&self.config, &self.status);
            if let Err(e) = result {
                warn!(pool = %self.config.pools[p].name, error = %e, "cannot rewrite the XDP maps for a backend state change; the kernel keeps the previous tables");
            }
        }
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
