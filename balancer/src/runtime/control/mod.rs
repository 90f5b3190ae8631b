//! The control loop: the one owner of backend states. Check outcomes and
//! the failures the proxies see arrive as [`Event`]s; each moves its
//! backend's state machine, a change is logged once with its cause and
//! counted, and a change that matters to the data planes rebuilds the
//! backend's pool for the proxies (swapped in whole) and rewrites the XDP
//! maps.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::backends::Backends;
use super::{
    BackendStats, CheckRecord, LivePool, PoolState,
    failure::Failure,
    guard_lists::{Added, ListChange, ListError, Lists, carry},
    plane::{Plane, WriteError},
    state::{Admin, State, Status, Thresholds},
};
use crate::config::Config;

mod backends;
mod ramp;

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
    /// What the loop knows of each backend.
    backends: Backends,
    /// Backends a reload removed, and when their connections close.
    leaving: Vec<(Instant, Arc<BackendStats>)>,
    /// The planes written before a change is kept (the XDP maps).
    planes: Vec<Box<dyn Plane>>,
}

impl Control {
    /// Takes over the pools of `config` (every backend up), keeping
    /// `planes` in step.
    #[must_use]
    pub fn new(
        config: Arc<Config>,
        pools: Vec<Arc<LivePool>>,
        planes: Vec<Box<dyn Plane>>,
    ) -> Self {
        Self {
            generation: 0,
            file: config.clone(),
            backends: Backends::new(&config),
            config,
            lists: Lists::default(),
            pools,
            leaving: Vec::new(),
            planes,
        }
    }

    /// Handles events until every sender is gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut ramp = tokio::time::interval(ramp::RAMP_TICK);
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
            Event::Ping { reply } => {
                let _ = reply.send(());
                return;
            }
            Event::NextHops => {
                let all = self.backends.statuses();
                for plane in &mut self.planes {
                    if let Err(e) = plane.update(&self.config, &all) {
                        warn!(plane = plane.name(), error = %e, "cannot rewrite a plane for a next hop's new MAC; it keeps the old one");
                    }
                }
                return;
            }
            Event::TakeBack { reply } => {
                let all = self.backends.statuses();
                for plane in &mut self.planes {
                    if let Err(e) = plane.take_back(&self.config, &all) {
                        warn!(plane = plane.name(), error = %e,
                            "cannot take a plane back from an unfinished upgrade; restart the daemon");
                    }
                }
                let _ = reply.send(());
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
                failure,
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
                (pool, backend, false, format!("proxy saw: {failure}"))
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
        let Some(before) = self.backends.get(p, b).map(|t| t.status) else {
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
        self.backends.at(p, b).status = after;
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
            // Only a change of what the backend serves is news: a single
            // failed check (up to falling, and back) on a lossy link would
            // otherwise log two lines per backend each time.
            if before.takes_new_flows() == after.takes_new_flows() {
                debug!(%pool, backend = %address, from = %before.state(), to = %after.state(), %cause, "backend state changed");
            } else if after.takes_new_flows() {
                info!(%pool, backend = %address, from = %before.state(), to = %after.state(), %cause, "backend state changed");
            } else {
                warn!(%pool, backend = %address, from = %before.state(), to = %after.state(), %cause, "backend state changed");
            }
        }
    }

    /// Counts a check's outcome in its backend's statistics.
    fn record_check(&self, pool: usize, backend: usize, outcome: &Result<Duration, Failure>) {
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
        if let Action::Weight(w) = action
            && w > MAX_WEIGHT
        {
            return Err(AdminError::BadWeight(w));
        }
        let timeout = self.config.pools[p].drain_timeout;
        let t = self.backends.at(p, b);
        let before = t.status;
        match action {
            Action::Drain => {
                t.status.admin = Admin::Draining;
                if before.admin != Admin::Draining {
                    t.drain_until = timeout.map(|d| Instant::now() + d);
                }
            }
            Action::Enable | Action::Disable => {
                t.status.admin = if action == Action::Enable {
                    Admin::Enabled
                } else {
                    Admin::Disabled
                };
                t.drain_until = None;
            }
            Action::Weight(w) => t.status.weight = Some(w),
        }
        let after = t.status;
        if after != before {
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

    /// Moves to `config` (see [`Event::Reload`]). The planes are written
    /// first; if one refuses, those already written are put back and
    /// nothing changes.
    pub fn reload(
        &mut self,
        config: Arc<Config>,
        pools: Vec<Arc<LivePool>>,
        generation: u64,
    ) -> Result<(), WriteError> {
        let old_pools: Vec<_> = self.pools.iter().map(|p| p.load_full()).collect();
        let (backends, counters) = self.backends.carry(&self.config, &old_pools, &config);
        let (lists, dropped) = self.lists.rebase(&config);
        let file = config;
        let config = if lists.added().is_empty() {
            file.clone()
        } else {
            Arc::new(lists.apply(&file))
        };
        self.write_planes(&config, &backends.statuses(), Write::Reload)?;
        for why in dropped {
            warn!("{why}");
        }
        self.lists = lists;
        self.file = file;
        self.keep_lists();
        self.schedule_leaving(&config, &old_pools);
        for (p, (live, stats)) in pools.iter().zip(&counters).enumerate() {
            let status: Vec<Status> = backends.pool(p).iter().map(|t| t.status).collect();
            live.store(Arc::new(PoolState::build(&config.pools[p], &status, stats)));
        }
        self.config = config;
        self.pools = pools;
        self.backends = backends;
        self.generation = generation;
        Ok(())
    }

    /// Shows or changes the guard lists; a change is written to the planes
    /// before it is kept, so a refused write changes nothing.
    pub fn guard(&mut self, change: &ListChange) -> Result<GuardAnswer, ListError> {
        let Some(next) = self.lists.change(&self.file, change)? else {
            return Ok(GuardAnswer {
                changed: false,
                lists: self.lists.view(&self.file),
            });
        };
        if !self.planes.iter().any(|p| p.guards()) {
            return Err(ListError::NoXdp);
        }
        let config = Arc::new(next.apply(&self.file));
        self.write_planes(&config, &self.backends.statuses(), Write::Update)
            .map_err(|e| ListError::Write(e.to_string()))?;
        info!(?change, "operator changed the guard lists");
        self.lists = next;
        self.config = config;
        self.keep_lists();
        Ok(GuardAnswer {
            changed: true,
            lists: self.lists.view(&self.file),
        })
    }

    /// Keeps the admin API's entries where a daemon that upgrades this one
    /// finds them (see [`carry`]).
    fn keep_lists(&self) {
        let path = carry::path(&self.file.state_dir);
        if self.lists.added().is_empty() {
            let _ = std::fs::remove_file(&path);
            return;
        }
        if let Err(e) = carry::save(&self.lists, &path) {
            warn!(path = %path.display(), error = %e,
                "cannot keep the admin API's guard entries; an upgrade now would lose them");
        }
    }

    /// At start: after an upgrade, adds the admin API's entries of the
    /// daemon this one upgrades (read from `state_dir`; one the config now
    /// refuses is dropped with a warning, as a reload drops it); otherwise
    /// forgets them, so a restart begins from the config file's lists.
    pub fn begin_lists(&mut self, upgraded: bool) {
        let path = carry::path(&self.file.state_dir);
        if !upgraded {
            let _ = std::fs::remove_file(&path);
            return;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let (entries, bad) = carry::parse(&text);
        for why in bad {
            warn!(path = %path.display(), "skipped a carried guard entry: {why}");
        }
        let mut kept = 0;
        for entry in entries {
            let what = format!("{} `{}`", path_of(&entry), entry.cidr);
            match self.guard(&ListChange::Add(entry)) {
                Ok(_) => kept += 1,
                Err(e) => warn!("dropped the admin API's {what} of the upgraded daemon: {e}"),
            }
        }
        info!(
            kept,
            "carried the admin API's guard entries over from the upgraded daemon"
        );
    }

    /// Writes `config` with backends in `status` to every plane. When one
    /// refuses, the planes written before it get the running config back,
    /// so all stay as they were, and the refusal is returned.
    fn write_planes(
        &mut self,
        config: &Config,
        status: &[Vec<Status>],
        how: Write,
    ) -> Result<(), WriteError> {
        let apply = |plane: &mut Box<dyn Plane>, c: &Config, s: &[Vec<Status>]| match how {
            Write::Reload => plane.reload(c, s),
            Write::Update => plane.update(c, s),
        };
        for i in 0..self.planes.len() {
            if let Err(e) = apply(&mut self.planes[i], config, status) {
                let running = self.backends.statuses();
                for plane in &mut self.planes[..i] {
                    if let Err(undo) = apply(plane, &self.config, &running) {
                        warn!(plane = plane.name(), error = %undo, "cannot put a plane back after another refused a change; it runs the refused change until the next one");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The state of every backend, by pool.
    #[must_use]
    pub fn status(&self) -> Vec<Vec<Status>> {
        self.backends.statuses()
    }

    fn stats(&self, pool: usize, backend: usize) -> Option<Arc<BackendStats>> {
        let live = self.pools.get(pool)?.load();
        live.backends.get(backend).map(|b| b.stats.clone())
    }

    /// Rebuilds pool `p` for the proxies and rewrites the planes; a plane
    /// that refuses keeps its previous state, said in the log.
    fn publish(&mut self, p: usize) {
        let live = &self.pools[p];
        let counters: Vec<_> = live
            .load()
            .backends
            .iter()
            .map(|b| b.stats.clone())
            .collect();
        let states: Vec<Status> = self.backends.pool(p).iter().map(|t| t.status).collect();
        live.store(Arc::new(PoolState::build(
            &self.config.pools[p],
            &states,
            &counters,
        )));
        let all = self.backends.statuses();
        for plane in &mut self.planes {
            if let Err(e) = plane.update(&self.config, &all) {
                warn!(pool = %self.config.pools[p].name, plane = plane.name(), error = %e,
                    "cannot rewrite a plane for a backend state change; it keeps its previous state");
            }
        }
    }
}

/// Which write [`Control::write_planes`] makes.
#[derive(Clone, Copy)]
enum Write {
    Reload,
    Update,
}

#[cfg(test)]
mod tests;

/// Where an entry sits, as the config names it (`guard.deny`, ...).
fn path_of(a: &Added) -> String {
    crate::runtime::guard_lists::path(&a.scope, a.list)
}
