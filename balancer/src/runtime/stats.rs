//! Live counters. Plain relaxed atomics: they are statistics, read by status
//! and metrics, never used to synchronise anything.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Counters of one backend.
#[derive(Default)]
pub struct BackendStats {
    active: AtomicU64,
    /// Connections or sessions established, ever.
    pub total: AtomicU64,
    /// Connect attempts that failed or timed out.
    pub connect_failures: AtomicU64,
    /// Of those, TLS handshakes with the backend that failed (its
    /// certificate did not verify, no common protocol or ALPN).
    pub tls_failures: AtomicU64,
    /// Bytes client -> backend.
    pub bytes_in: AtomicU64,
    /// Bytes backend -> client.
    pub bytes_out: AtomicU64,
    /// Rate limit for this backend's failure log lines.
    pub log: LogLimiter,
    /// Changes of state (up, down, ...), ever.
    pub state_changes: AtomicU64,
    /// Health checks run, and how many of them failed.
    pub checks: AtomicU64,
    /// Health checks that failed.
    pub checks_failed: AtomicU64,
    /// The last health check's outcome.
    pub last_check: std::sync::Mutex<Option<CheckRecord>>,
    /// How long passing health checks took.
    pub check_latency: super::histogram::LatencyHistogram,
    /// Woken when the backend's drain timeout passes: its proxied
    /// connections close.
    pub cut: tokio::sync::Notify,
}

/// One health check's outcome, for status.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRecord {
    /// How long it took, when it passed.
    pub latency: Option<Duration>,
    /// Why it failed, when it did.
    pub error: Option<super::failure::Failure>,
}

impl BackendStats {
    /// Connections or sessions open now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Marks one more open connection until the guard drops.
    pub fn open(self: &std::sync::Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
}

/// Decrements a backend's active count on drop, on every exit path.
pub struct ActiveGuard(std::sync::Arc<BackendStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one listener.
#[derive(Default)]
pub struct ListenerStats {
    /// Connections accepted (TCP) or sessions created (UDP).
    pub accepted: AtomicU64,
    /// Connections closed at once because the listener was at `max_connections`.
    pub rejected_limit: AtomicU64,
    /// Clients closed because no backend could be reached.
    pub no_backend: AtomicU64,
    /// UDP sessions evicted because the listener was at `max_sessions`.
    pub sessions_evicted: AtomicU64,
    /// UDP sessions ended by idle timeout.
    pub sessions_expired: AtomicU64,
    /// UDP sessions placed on another backend because theirs lost its
    /// flows (down, disabled, or removed by a reload).
    pub sessions_replaced: AtomicU64,
    /// Accept errors (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
    /// PROXY protocol headers read from `accept_from` peers.
    pub proxy_headers: AtomicU64,
    /// Connections from `accept_from` peers closed for a missing,
    /// malformed or late PROXY header.
    pub proxy_refused: AtomicU64,
    /// ClientHellos read to route TLS by SNI.
    pub tls_hellos: AtomicU64,
    /// Of those, ClientHellos without a server name (to the listener's pool).
    pub tls_hellos_without_sni: AtomicU64,
    /// Connections to SNI routes closed for sending no ClientHello: not
    /// TLS, malformed, too long, or closed before it was whole.
    pub tls_hello_refused: AtomicU64,
    /// Connections to SNI routes closed for a ClientHello still not whole
    /// when its time ran out.
    pub tls_hello_timeouts: AtomicU64,
    /// Connections the sockmap relay carried in the kernel.
    pub sockmap_relayed: AtomicU64,
    /// Connections of a `sockmap` listener spliced instead: the client had
    /// already sent its FIN, or the relay's maps were full.
    pub sockmap_spliced: AtomicU64,
    /// Rate limit for this listener's log lines.
    pub log: LogLimiter,
    /// Requests by route, for `http` listeners.
    pub http: super::http_stats::HttpStats,
    /// Handshakes, for listeners that terminate TLS.
    pub tls: std::sync::Arc<super::tls_stats::TlsStats>,
}

impl ListenerStats {
    /// Every counter by name, for the status snapshot.
    #[must_use]
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("accepted", &self.accepted),
            ("rejected_limit", &self.rejected_limit),
            ("no_backend", &self.no_backend),
            ("sessions_evicted", &self.sessions_evicted),
            ("sessions_expired", &self.sessions_expired),
            ("sessions_replaced", &self.sessions_replaced),
            ("accept_errors", &self.accept_errors),
            ("proxy_headers", &self.proxy_headers),
            ("proxy_refused", &self.proxy_refused),
            ("tls_hellos", &self.tls_hellos),
            ("tls_hellos_without_sni", &self.tls_hellos_without_sni),
            ("tls_hello_refused", &self.tls_hello_refused),
            ("tls_hello_timeouts", &self.tls_hello_timeouts),
            ("sockmap_relayed", &self.sockmap_relayed),
            ("sockmap_spliced", &self.sockmap_spliced),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// Allows one log line per second per owner, so a dead backend or an fd
/// shortage is reported without flooding the log.
pub struct LogLimiter {
    epoch: Instant,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogLimiter {
    /// `Some(n)` when a line may be written now, `n` being how many were
    /// suppressed since the last one; `None` otherwise.
    pub fn allow(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + Duration::from_secs(1).as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimiter;

    #[test]
    fn one_line_per_second() {
        let l = LogLimiter::default();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
    }
}
