//! Time-driven changes of the control loop: slow-start ramps that grow a
//! returning backend's weight on every tick, drains whose timeout passes
//! (the backend is disabled and its proxied connections close), and the
//! connections of backends a reload removed, closed after the old pool's
//! drain timeout.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tracing::warn;

use super::Control;
use crate::{
    config::Config,
    runtime::{
        PoolState,
        state::{Admin, FULL},
    },
};

/// How often slow-starting weights move.
pub const RAMP_TICK: Duration = Duration::from_millis(100);
/// The least change of a ramp (thousandths) worth rebuilding a pool for.
const RAMP_STEP: u16 = 50;

impl Control {
    /// Moves every slow-starting backend's weight along to `now`, and ends
    /// the drains whose timeout has passed.
    pub fn tick(&mut self, now: Instant) {
        self.end_drains(now);
        let mut changed = Vec::new();
        for (p, b) in self.backends.indices().collect::<Vec<_>>() {
            let Some(span) = self.config.pools[p].slow_start else {
                continue;
            };
            let t = self.backends.at(p, b);
            let Some(since) = t.ramp_since else {
                continue;
            };
            let done = now.saturating_duration_since(since).as_secs_f64() / span.as_secs_f64();
            let ramp = if done >= 1.0 {
                t.ramp_since = None;
                FULL
            } else {
                #[expect(
                    clippy::cast_sign_loss,
                    reason = "`done` is in [0, 1) here, so the product fits a u16"
                )]
                let r = (done * f64::from(FULL)) as u16;
                r
            };
            // Rebuild only every few percent: a Maglev rebuild per tick and
            // backend would be waste.
            if ramp == FULL || ramp >= t.status.ramp + RAMP_STEP {
                t.status.ramp = ramp;
                if !changed.contains(&p) {
                    changed.push(p);
                }
            }
        }
        for p in changed {
            self.publish(p);
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
        for (p, b) in self.backends.indices().collect::<Vec<_>>() {
            let t = self.backends.at(p, b);
            if t.drain_until.is_none_or(|at| at > now) {
                continue;
            }
            t.drain_until = None;
            let before = t.status;
            if before.admin != Admin::Draining {
                continue;
            }
            t.status.admin = Admin::Disabled;
            let after = t.status;
            let pool = &self.config.pools[p];
            warn!(pool = %pool.name, backend = %pool.backends[b].address, from = %before.state(), to = %after.state(),
                "drain timeout passed: closing the backend's remaining connections");
            if let Some(stats) = self.stats(p, b) {
                stats.state_changes.fetch_add(1, Ordering::Relaxed);
                stats.cut.notify_waiters();
            }
            if !changed.contains(&p) {
                changed.push(p);
            }
        }
        for p in changed {
            self.publish(p);
        }
    }

    /// A backend of a pool with `slow_start` starts taking new flows: its
    /// weight starts small and grows on each [`Control::tick`].
    pub(super) fn start_ramp(&mut self, p: usize, b: usize, now: Instant) {
        if self.config.pools[p].slow_start.is_some() {
            let t = self.backends.at(p, b);
            t.ramp_since = Some(now);
            t.status.ramp = 0;
        }
    }

    /// At a reload to `config`: backends gone from it get no new flows, and
    /// their open connections close after the old pool's drain timeout, if
    /// it has one. (Drains under way keep their deadlines with their
    /// records.)
    pub(super) fn schedule_leaving(&mut self, config: &Config, old_pools: &[Arc<PoolState>]) {
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
    }
}
