//! Counters of an `http` listener, by route: answers by status code and a
//! duration histogram. A listener's set outlives reloads (it lives in its
//! [`super::ListenerStats`]), and a route keeps its counters across a
//! reload by name; a request that matched no route counts under
//! [`DEFAULT_ROUTE`].

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::histogram::LatencyHistogram;

/// The route name of requests no route matched.
pub const DEFAULT_ROUTE: &str = "(default)";

/// The lowest and highest status codes counted.
const CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// One route's counters.
pub struct RouteStats {
    /// The route's name.
    pub name: String,
    codes: Box<[AtomicU64]>,
    /// How long requests took, from their head to the end of the answer.
    pub duration: LatencyHistogram,
}

impl RouteStats {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            codes: CODES.map(|_| AtomicU64::new(0)).collect(),
            duration: LatencyHistogram::default(),
        }
    }

    /// Counts one answered request.
    pub fn record(&self, status: u16, took: Duration) {
        if CODES.contains(&status) {
            self.codes[usize::from(status - CODES.start())].fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe(took);
    }

    /// Answers by status code, those seen at least once.
    #[must_use]
    pub fn codes(&self) -> BTreeMap<u16, u64> {
        CODES
            .zip(self.codes.iter())
            .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Every route's counters of one listener.
#[derive(Default)]
pub struct HttpStats {
    routes: Mutex<Vec<Arc<RouteStats>>>,
}

impl HttpStats {
    /// The counters of the route named `name`, made on first use.
    pub fn route(&self, name: &str) -> Arc<RouteStats> {
        let Ok(mut routes) = self.routes.lock() else {
            return Arc::new(RouteStats::new(name));
        };
        if let Some(r) = routes.iter().find(|r| r.name == name) {
            return r.clone();
        }
        let r = Arc::new(RouteStats::new(name));
        routes.push(r.clone());
        r
    }

    /// Every route's counters, in the order they were first used.
    #[must_use]
    pub fn routes(&self) -> Vec<Arc<RouteStats>> {
        self.routes.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::HttpStats;

    #[test]
    fn routes_keep_their_counters_by_name() {
        let s = HttpStats::default();
        let a = s.route("api");
        a.record(200, Duration::from_millis(3));
        a.record(200, Duration::from_millis(3));
        a.record(503, Duration::from_millis(1));
        a.record(42, Duration::ZERO);
        assert_eq!(s.route("api").codes(), [(200, 2), (503, 1)].into());
        assert!(s.route("web").codes().is_empty());
        assert_eq!(s.routes().len(), 2);
        assert_eq!(a.duration.snapshot().1, 4);
    }
}
