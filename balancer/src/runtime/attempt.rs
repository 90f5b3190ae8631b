//! The one attempt loop every userspace proxy uses to reach a backend
//! (pingora-load-balancing's `select_with`, with the connect inside): pick
//! with the pool's selector, passing over the backends already tried;
//! connect; on failure report it once to passive health, count it, log it
//! at the backend's limited rate, and try the next distinct backend, up to
//! the listener's `connect_attempts`. TCP, UDP and the HTTP upstream differ
//! only in the connect future they pass in.

use std::{future::Future, net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use balancer_common::FlowTuple;
use tracing::warn;

use super::{BackendStats, PoolState, events::Passive, failure::Failure};
use crate::config::limits::MAX_CONNECT_ATTEMPTS;

/// Who asks for a backend: named in the log, and told of failures.
pub struct Asker<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// How many distinct backends to try at most (capped at
    /// [`MAX_CONNECT_ATTEMPTS`]).
    pub attempts: usize,
    /// Where failures go, toward the pool's passive health.
    pub passive: &'a Passive,
}

/// A backend reached.
pub struct Reached<C> {
    /// The connection the connect future made.
    pub conn: C,
    /// The backend's index in the pool.
    pub index: usize,
    /// Its address.
    pub address: SocketAddr,
    /// Its counters.
    pub stats: Arc<BackendStats>,
}

/// Why no backend was reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// The pool has no backend taking new flows (all down, drained or
    /// disabled), so nothing was tried.
    #[error("no backend of the pool takes new connections")]
    NoBackend,
    /// Every backend tried failed; the last failure.
    #[error("{tried} backends tried, the last failed: {last}")]
    Failed {
        /// How many were tried.
        tried: usize,
        /// The last one's failure.
        last: Failure,
    },
}

impl PoolState {
    /// Reaches a backend for `flow` with `connect`, trying distinct
    /// backends until one connects or `asker.attempts` have failed. Each
    /// failure is reported to passive health once, counted in the
    /// backend's `connect_failures` (and `tls_failures` for a failed TLS
    /// handshake), and logged at its limited rate.
    pub async fn attempt<C, F, Fut>(
        &self,
        flow: &FlowTuple,
        asker: &Asker<'_>,
        mut connect: F,
    ) -> Result<Reached<C>, Unreachable>
    where
        F: FnMut(SocketAddr) -> Fut,
        Fut: Future<Output = Result<C, Failure>>,
    {
        let mut tried = [usize::MAX; MAX_CONNECT_ATTEMPTS as usize];
        let attempts = asker.attempts.clamp(1, tried.len());
        let mut last = None;
        for n in 0..attempts {
            let Some(index) = self.pick(flow, &tried[..n]) else {
                break;
            };
            tried[n] = index;
            let backend = &self.backends[index];
            let failure = match connect(backend.address).await {
                Ok(conn) => {
                    return Ok(Reached {
                        conn,
                        index,
                        address: backend.address,
                        stats: backend.stats.clone(),
                    });
                }
                Err(f) => f,
            };
            asker.passive.report(index, failure.clone());
            backend
                .stats
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            if matches!(failure, Failure::Tls(_)) {
                backend.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(suppressed) = backend.stats.log.allow() {
                warn!(listener = %asker.listener, pool = %self.name, backend = %backend.address,
                    error = %failure, suppressed, "backend connect failed; trying another");
            }
            last = Some((n + 1, failure));
        }
        Err(match last {
            Some((tried, last)) => Unreachable::Failed { tried, last },
            None => Unreachable::NoBackend,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, net::SocketAddr, sync::atomic::Ordering};

    use balancer_common::FlowTuple;
    use tokio::sync::mpsc;

    use super::{Asker, Unreachable};
    use crate::{
        config,
        runtime::{
            PoolState,
            events::{Event, Passive},
            failure::{Failure, Step},
        },
    };

    fn pool(backends: usize) -> PoolState {
        let list: Vec<String> = (0..backends)
            .map(|i| format!("{{ address: 127.0.0.1:{} }}", 9001 + i))
            .collect();
        let yaml = format!(
            "version: 1
listeners: [{{ name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }}]
pools: [{{ name: web, algorithm: round_robin, backends: [{}] }}]
",
            list.join(", ")
        );
        let config = config::parse(&yaml, "t.yaml").expect("config");
        PoolState::new(&config.pools[0])
    }

    const FLOW: FlowTuple = FlowTuple {
        src: [0; 16],
        dst: [0; 16],
        src_port: 1,
        dst_port: 8080,
        protocol: 6,
        pad: [0; 3],
    };

    /// The backends passive health heard about, in order.
    fn reported(rx: &mut mpsc::Receiver<Event>) -> Vec<(usize, Failure)> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::Passive {
                backend, failure, ..
            } = e
            {
                out.push((backend, failure));
            }
        }
        out
    }

    #[tokio::test]
    async fn tries_distinct_backends_and_reports_each_failure_once() {
        let pool = pool(4);
        let (tx, mut rx) = mpsc::channel(16);
        let passive = Passive::new(0, 0, tx);
        let asker = Asker {
            listener: "web",
            attempts: 3,
            passive: &passive,
        };
        let seen = RefCell::new(Vec::new());
        let refused = Failure::Refused(Step::Connect);
        let got = pool
            .attempt(&FLOW, &asker, |a: SocketAddr| {
                seen.borrow_mut().push(a);
                let n = seen.borrow().len();
                let r = if n < 3 { Err(refused.clone()) } else { Ok(n) };
                async move { r }
            })
            .await
            .expect("the third backend connects");
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 3);
        let mut distinct = seen.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "a backend was tried twice: {seen:?}");
        assert_eq!(got.conn, 3);
        assert_eq!(got.address, seen[2]);
        assert_eq!(pool.backends[got.index].address, seen[2]);
        let failed: Vec<usize> = reported(&mut rx).into_iter().map(|(b, _)| b).collect();
        let want: Vec<usize> = seen[..2]
            .iter()
            .map(|a| {
                pool.backends
                    .iter()
                    .position(|b| b.address == *a)
                    .expect("a backend")
            })
            .collect();
        assert_eq!(failed, want, "each failure reported once, in order");
        for &b in &want {
            assert_eq!(
                pool.backends[b]
                    .stats
                    .connect_failures
                    .load(Ordering::Relaxed),
                1
            );
        }
        assert_eq!(
            pool.backends[got.index]
                .stats
                .connect_failures
                .load(Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn gives_up_after_its_attempts_with_the_last_failure() {
        let pool = pool(4);
        let (tx, mut rx) = mpsc::channel(16);
        let passive = Passive::new(0, 0, tx);
        let asker = Asker {
            listener: "web",
            attempts: 2,
            passive: &passive,
        };
        let calls = RefCell::new(0u32);
        let err = pool
            .attempt(&FLOW, &asker, |_| {
                *calls.borrow_mut() += 1;
                let f = if *calls.borrow() == 1 {
                    Failure::Refused(Step::Connect)
                } else {
                    Failure::Timeout(std::time::Duration::from_millis(5))
                };
                async move { Err::<(), _>(f) }
            })
            .await
            .err()
            .expect("every attempt fails");
        assert_eq!(
            err,
            Unreachable::Failed {
                tried: 2,
                last: Failure::Timeout(std::time::Duration::from_millis(5))
            }
        );
        assert_eq!(reported(&mut rx).len(), 2);
    }

    #[tokio::test]
    async fn stops_when_the_pool_runs_out_of_backends() {
        let pool = pool(2);
        let (tx, mut rx) = mpsc::channel(16);
        let passive = Passive::new(0, 0, tx);
        let asker = Asker {
            listener: "web",
            attempts: 5,
            passive: &passive,
        };
        let calls = RefCell::new(0u32);
        let err = pool
            .attempt(&FLOW, &asker, |_| {
                *calls.borrow_mut() += 1;
                async { Err::<(), _>(Failure::Reset) }
            })
            .await
            .err()
            .expect("both fail");
        assert_eq!(*calls.borrow(), 2, "only distinct backends are tried");
        assert!(
            matches!(err, Unreachable::Failed { tried: 2, .. }),
            "{err:?}"
        );
        assert_eq!(reported(&mut rx).len(), 2);
    }

    #[tokio::test]
    async fn an_empty_pool_tries_nothing() {
        let config = config::parse(
            "version: 1
listeners: [{ name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }]
pools: [{ name: web, algorithm: round_robin, backends: [{ address: 127.0.0.1:9001, weight: 0 }] }]
",
            "t.yaml",
        )
        .expect("config");
        let pool = PoolState::new(&config.pools[0]);
        let (tx, _rx) = mpsc::channel(16);
        let passive = Passive::new(0, 0, tx);
        let asker = Asker {
            listener: "web",
            attempts: 3,
            passive: &passive,
        };
        let err = pool
            .attempt(&FLOW, &asker, |_| async { Ok::<_, Failure>(()) })
            .await
            .err()
            .expect("nothing to pick");
        assert_eq!(err, Unreachable::NoBackend);
    }
}
