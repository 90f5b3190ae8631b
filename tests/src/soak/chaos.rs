//! What the soak does to the balancer while clients load it, each on its
//! own clock: a backend stopped (nginx told to quit, or to stop at once,
//! and its UDP server killed) every 10-30 s and started again after 6-10 s,
//! one at a time; a reload every 15 s that changes a pool's weights; a
//! guard list entry added or removed every 10 s; and `run --upgrade` every
//! few minutes. Every action is logged with its time.

use std::{path::PathBuf, time::Duration};

use crate::{Process, admin, l2::L2};

use super::{
    record::Recorder,
    site::{self, Backend, GRACE_S, GUARDED},
    verdict::Flap,
};

/// Something the soak did, with when (seconds since the start).
#[derive(Clone, Debug)]
pub struct Action {
    /// When.
    pub at: f64,
    /// What, in words (for the report).
    pub what: String,
}

/// A small deterministic generator (xorshift64*), seeded per run and
/// printed, so a run's schedule can be repeated.
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed` (0 is replaced).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        lo + (hi - lo) * (x as f64 / (1u64 << 53) as f64)
    }
}

/// A daemon that handed over, and when.
struct Retired {
    daemon: Process,
    handed: f64,
    exited: Option<f64>,
}

/// The soak's disturbances and the daemons they go through.
pub struct Chaos<'a> {
    t: &'a L2,
    rec: &'a Recorder,
    tls: crate::certs::Pair,
    pin_dir: PathBuf,
    rng: Rng,
    backends: Vec<Option<Backend>>,
    starts: usize,
    down: Option<(usize, f64)>,
    next_flap: f64,
    next_reload: f64,
    next_guard: f64,
    next_upgrade: f64,
    upgrade_every: f64,
    variant: usize,
    denied: bool,
    /// The daemon serving now.
    pub daemon: Process,
    /// Its generation (0 the first).
    pub generation: usize,
    retired: Vec<Retired>,
    /// Every daemon's log file.
    pub logs: Vec<PathBuf>,
    /// Every action, in order.
    pub actions: Vec<Action>,
    /// Every backend stop, with its start.
    pub flaps: Vec<Flap>,
    /// Reloads and guard changes the admin API refused or failed.
    pub refused: Vec<String>,
}

impl<'a> Chaos<'a> {
    /// Starts the backends and the first daemon.
    #[must_use]
    pub fn start(
        t: &'a L2,
        rec: &'a Recorder,
        tls: crate::certs::Pair,
        pin_dir: PathBuf,
        seed: u64,
        upgrade_every: Duration,
    ) -> Self {
        let backends = (0..site::BACKENDS)
            .map(|i| Some(site::start_backend(t, i, 0)))
            .collect();
        // Five listeners and the admin API.
        let daemon = t.start_balancer(&site::config(&pin_dir, &tls, 0), 6);
        let mut rng = Rng::new(seed);
        let upgrade_every = upgrade_every.as_secs_f64();
        Self {
            next_flap: rng.between(10.0, 30.0),
            next_reload: 15.0,
            next_guard: 10.0,
            next_upgrade: upgrade_every,
            upgrade_every,
            t,
            rec,
            tls,
            pin_dir,
            rng,
            backends,
            starts: 1,
            down: None,
            variant: 0,
            denied: false,
            daemon,
            generation: 0,
            retired: Vec::new(),
            logs: vec![t.dir.path().join("balancer.log")],
            actions: Vec::new(),
            flaps: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn note(&mut self, what: String) {
        let at = self.rec.now();
        eprintln!("soak {at:7.1} s: {what}");
        self.actions.push(Action { at, what });
    }

    /// Does whatever is due by now; `ending` stops starting new flaps.
    pub fn tick(&mut self, ending: bool) {
        let now = self.rec.now();
        if let Some((b, until)) = self.down
            && now >= until
        {
            self.backends[b] = Some(site::start_backend(self.t, b, self.starts));
            self.starts += 1;
            self.down = None;
            let at = self.rec.now();
            if let Some(f) = self.flaps.last_mut() {
                f.end = Some(at);
            }
            self.note(format!("backend {} started", b + 1));
            self.next_flap = self.next_flap.max(at + 4.0);
        } else if self.down.is_none() && !ending && now >= self.next_flap {
            self.stop_one(now);
        }
        if now >= self.next_reload {
            self.next_reload += 15.0;
            self.reload();
        }
        if now >= self.next_guard {
            self.next_guard += 10.0;
            self.guard();
        }
        if !ending && now >= self.next_upgrade {
            self.next_upgrade += self.upgrade_every;
            self.upgrade();
        }
        for r in &mut self.retired {
            if r.exited.is_none() && r.daemon.wait_timeout(Duration::ZERO).is_some() {
                r.exited = Some(self.rec.now());
            }
        }
    }

    fn stop_one(&mut self, now: f64) {
        let b = self
            .flaps
            .last()
            .map_or(0, |f| (f.backend + 1) % site::BACKENDS);
        let hard = self.flaps.len() % 2 == 1;
        if let Some(backend) = self.backends[b].take() {
            // SIGQUIT: nginx stops listening and finishes what it has;
            // SIGTERM: it closes every connection now.
            backend
                .nginx
                .signal(if hard { libc::SIGTERM } else { libc::SIGQUIT });
            let Backend { mut nginx, udp } = backend;
            drop(udp);
            let _ = nginx.wait_timeout(Duration::from_secs(5));
        }
        self.flaps.push(Flap {
            backend: b,
            start: now,
            end: None,
        });
        let down_for = self.rng.between(6.0, 10.0);
        self.down = Some((b, now + down_for));
        self.next_flap = now + self.rng.between(10.0, 30.0);
        self.note(format!(
            "backend {} stopped ({}), for {down_for:.1} s",
            b + 1,
            if hard { "at once" } else { "gracefully" }
        ));
    }

    fn reload(&mut self) {
        self.variant += 1;
        crate::write_config(
            self.t.dir.path(),
            &site::config(&self.pin_dir, &self.tls, self.variant),
        );
        let (code, body) = admin::call(&self.t.lb, "POST", "/reload", None);
        if code != 200 {
            self.refused.push(format!("reload: {code} {body}"));
        }
        self.note(format!("reload {} ({code})", self.variant));
    }

    fn guard(&mut self) {
        let (method, path) = if self.denied {
            ("DELETE", format!("/guard/deny/{GUARDED}/32"))
        } else {
            ("POST", format!("/guard/deny/{GUARDED}"))
        };
        let (code, body) = admin::call(&self.t.lb, method, &path, None);
        if code == 200 {
            self.denied = !self.denied;
        } else {
            self.refused.push(format!("{method} {path}: {code} {body}"));
        }
        self.note(format!("guard {method} {GUARDED} ({code})"));
    }

    fn upgrade(&mut self) {
        let n = self.generation + 1;
        let name = format!("balancer-{n}.log");
        let new = crate::upgrade_balancer(&self.t.lb, self.t.dir.path(), &name);
        let old = std::mem::replace(&mut self.daemon, new);
        self.retired.push(Retired {
            daemon: old,
            handed: self.rec.now(),
            exited: None,
        });
        self.generation = n;
        self.logs.push(self.t.dir.path().join(name));
        self.note(format!("upgrade to daemon {n} (pid {})", self.daemon.pid()));
    }

    /// Ends the flap in progress (the backend starts again), waits for the
    /// old daemons to exit, and says how long each took after its handover
    /// (`None`: still running after the grace and 5 s).
    pub fn finish(&mut self) -> Vec<Option<f64>> {
        if let Some((b, _)) = self.down {
            self.down = Some((b, 0.0));
            self.tick(true);
        }
        let limit = GRACE_S as f64 + 5.0;
        self.retired
            .iter_mut()
            .map(|r| {
                if r.exited.is_none() {
                    let left = (r.handed + limit - self.rec.now()).max(0.0);
                    if r.daemon
                        .wait_timeout(Duration::from_secs_f64(left))
                        .is_some()
                    {
                        r.exited = Some(self.rec.now());
                    }
                }
                r.exited.map(|e| e - r.handed)
            })
            .collect()
    }
}
