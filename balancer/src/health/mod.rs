//! Active health checks: one task per checked backend, each probing at its
//! pool's interval (plus or minus the jitter, so many backends do not fire
//! in lockstep) and reporting every outcome to the control loop, which owns
//! the backend states. A pool with `tls` is checked over TLS, as `HAProxy`
//! checks `ssl` servers: a `tcp` check is a handshake, an `http` check a
//! request over it, so a backend whose certificate fails verification is
//! down. Dropping the [`Monitor`] stops every task.

mod probe;

use std::{
    hash::{BuildHasher as _, RandomState},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinSet};

pub use self::probe::probe;
use crate::{config::Config, runtime::control::Event, tls::upstream::Connector};

/// The running checks of one config.
pub struct Monitor {
    _tasks: JoinSet<()>,
}

impl Monitor {
    /// Starts a check task for every backend of every pool with `health`,
    /// reporting as config `generation`; pools with TLS (`tls`, by pool
    /// index) are checked over it.
    #[must_use]
    pub fn start(
        config: &Arc<Config>,
        generation: u64,
        events: &mpsc::Sender<Event>,
        tls: &[Option<Arc<Connector>>],
    ) -> Self {
        let mut tasks = JoinSet::new();
        for (p, pool) in config.pools.iter().enumerate() {
            let Some(check) = &pool.health else { continue };
            for (b, backend) in pool.backends.iter().enumerate() {
                let check = check.clone();
                let events = events.clone();
                let tls = tls.get(p).cloned().flatten();
                let address = backend.address;
                tasks.spawn(async move {
                    // Spread the first checks over one interval too.
                    tokio::time::sleep(jittered(Duration::ZERO, check.interval, address)).await;
                    loop {
                        let outcome = probe(&check, address, tls.as_deref()).await;
                        let event = Event::Check {
                            generation,
                            pool: p,
                            backend: b,
                            outcome,
                        };
                        if events.send(event).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(jittered(check.interval, check.jitter, address)).await;
                    }
                });
            }
        }
        Self { _tasks: tasks }
    }
}

/// `base` plus or minus a random share of `jitter`.
fn jittered(base: Duration, jitter: Duration, salt: SocketAddr) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    // RandomState is seeded per instance: a fresh random value each call.
    let r = RandomState::new().hash_one(salt);
    let span = jitter.as_micros().max(1) as u64;
    let offset = Duration::from_micros(r % (2 * span));
    (base + offset).saturating_sub(jitter)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::jittered;

    #[test]
    fn jitter_stays_within_its_bounds_and_varies() {
        let base = Duration::from_secs(1);
        let jitter = Duration::from_millis(100);
        let a = "198.18.0.1:80".parse().expect("addr");
        let samples: Vec<Duration> = (0..200).map(|_| jittered(base, jitter, a)).collect();
        assert!(
            samples
                .iter()
                .all(|d| *d >= base.saturating_sub(jitter) && *d < base + jitter)
        );
        assert!(samples.iter().any(|d| *d != samples[0]), "no variation");
        assert_eq!(jittered(base, Duration::ZERO, a), base);
    }
}
