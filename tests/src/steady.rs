//! Steady traffic through an XDP VIP while a test restarts or upgrades the
//! daemon under it: keep-alive connections exchanging requests (a flow
//! sent to another backend would be reset) and new connections arriving
//! at a fixed rate, each outcome counted.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::client::{KeepAlive, http_get};

/// Outcomes so far.
#[derive(Default)]
pub struct Tally {
    /// Requests on kept connections that were answered.
    pub kept_ok: AtomicU64,
    /// Requests on kept connections that failed.
    pub kept_failed: AtomicU64,
    /// New connections whose request was answered.
    pub new_ok: AtomicU64,
    /// New connections that failed.
    pub new_failed: AtomicU64,
}

impl Tally {
    /// `(kept_ok, kept_failed, new_ok, new_failed)`.
    #[must_use]
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            c(&self.kept_ok),
            c(&self.kept_failed),
            c(&self.new_ok),
            c(&self.new_failed),
        )
    }
}

/// Requests on `kept` keep-alive connections and `per_sec` new connections
/// a second to `vip` until `stop`, counted in `tally`. Bounded: it stops by
/// itself after 10 minutes.
///
/// # Panics
/// When a kept connection cannot be opened at the start.
pub fn traffic(vip: SocketAddr, kept: usize, per_sec: u32, stop: &AtomicBool, tally: &Tally) {
    let mut conns: Vec<KeepAlive> = (0..kept)
        .map(|i| KeepAlive::open(vip).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let started = Instant::now();
    let every = Duration::from_secs(1) / per_sec.max(1);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_mins(10) {
        for c in &mut conns {
            let counter = if c.get().is_ok() {
                &tally.kept_ok
            } else {
                &tally.kept_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            while Instant::now() >= next {
                let counter = if http_get(vip, None).is_ok() {
                    &tally.new_ok
                } else {
                    &tally.new_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                next += every;
            }
        }
        if conns.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The id of the program a daemon's log says it attached or swapped in
/// last.
#[must_use]
pub fn program_id(log: &str) -> Option<u32> {
    log.lines()
        .rev()
        .find(|l| l.contains("XDP program") && l.contains("program=Some("))
        .and_then(|l| l.split("program=Some(").nth(1))
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
}
