//! What was measured for one target: its load runs (one per round; the
//! report shows their median and range, because two shared CPUs make single
//! runs noisy), its idle-memory reading (once, on a fresh process) and the
//! warnings its log held.

use serde_json::{Value, json};

use super::{
    idle::IdleRss,
    load::{Iperf, Wrk},
    peers::Target,
};

/// One round of load against a target.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    /// iperf3, one stream.
    pub one: Iperf,
    /// iperf3, four streams.
    pub four: Iperf,
    /// wrk, short connections.
    pub wrk: Wrk,
}

impl Run {
    /// The run as JSON.
    pub fn json(&self) -> Value {
        json!({
            "throughput_1_gbps": self.one.gbps,
            "throughput_4_gbps": self.four.gbps,
            "retransmits_1": self.one.retransmits,
            "retransmits_4": self.four.retransmits,
            "conn_rate": self.wrk.rate,
            "latency_p50_ms": self.wrk.p50_ms,
            "latency_p99_ms": self.wrk.p99_ms,
            "wrk_requests": self.wrk.requests,
            "wrk_socket_errors": self.wrk.errors,
            "wrk_non_2xx": self.wrk.non_2xx,
        })
    }
}

/// Everything measured for one target.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Which target.
    pub target: Target,
    /// One entry per round.
    pub runs: Vec<Run>,
    /// Idle-connection memory; `None` for direct.
    pub idle: Option<IdleRss>,
    /// Warnings and errors the proxy logged, over all rounds.
    pub log: LogNotes,
}

/// A metric of a [`Run`].
pub type Metric = fn(&Run) -> f64;

/// Receiver throughput, one stream, Gbit/s.
pub const ONE: Metric = |r| r.one.gbps;
/// Receiver throughput, four streams, Gbit/s.
pub const FOUR: Metric = |r| r.four.gbps;
/// Connections per second.
pub const RATE: Metric = |r| r.wrk.rate;
/// Median latency, ms.
pub const P50: Metric = |r| r.wrk.p50_ms;
/// 99th percentile latency, ms.
pub const P99: Metric = |r| r.wrk.p99_ms;

impl Measured {
    /// Nothing measured yet.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            runs: Vec::new(),
            idle: None,
            log: LogNotes::default(),
        }
    }

    /// Median of `metric` over the rounds (0 without rounds).
    pub fn median(&self, metric: Metric) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(metric).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
        }
    }

    /// Lowest and highest `metric` over the rounds.
    pub fn range(&self, metric: Metric) -> (f64, f64) {
        self.runs
            .iter()
            .map(metric)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    }

    /// Socket errors and non-2xx responses over all rounds.
    pub fn wrk_errors(&self) -> u64 {
        self.runs.iter().map(|r| r.wrk.errors + r.wrk.non_2xx).sum()
    }

    /// Memory per idle connection, KiB, where measured.
    pub fn rss_per_conn(&self) -> Option<f64> {
        self.idle.map(|i| i.per_conn_kib())
    }

    /// The target as JSON: medians, then every run.
    pub fn json(&self) -> Value {
        json!({
            "name": self.target.name(),
            "label": self.target.label(),
            "throughput_1_gbps": self.median(ONE),
            "throughput_4_gbps": self.median(FOUR),
            "conn_rate": self.median(RATE),
            "latency_p50_ms": self.median(P50),
            "latency_p99_ms": self.median(P99),
            "wrk_errors": self.wrk_errors(),
            "rss_kib_per_idle_conn": self.rss_per_conn(),
            "idle": self.idle.map(|i| json!({
                "opened": i.opened,
                "upstream": i.upstream,
                "processes": i.processes,
                "rss_before_kib": i.before_kib,
                "rss_after_kib": i.after_kib,
            })),
            "runs": self.runs.iter().map(Run::json).collect::<Vec<_>>(),
            "log_warnings": self.log.count,
            "log_samples": self.log.samples,
        })
    }
}

/// Warning and error lines from a proxy's log.
#[derive(Clone, Debug, Default)]
pub struct LogNotes {
    /// How many lines looked like a warning or an error.
    pub count: usize,
    /// The first few distinct ones.
    pub samples: Vec<String>,
}

impl LogNotes {
    const SAMPLES: usize = 5;

    /// Adds the warning/error lines of one log in any of the three proxies'
    /// styles (`WARN`/`ERROR`, `[WARNING]`/`[ALERT]`, `[warn]`/`[error]`/`[crit]`).
    pub fn add_log(&mut self, text: &str) {
        for line in text.lines().map(str::trim) {
            let l = line.to_ascii_lowercase();
            if ["warn", "error", "alert", "crit", "emerg"]
                .iter()
                .any(|w| l.contains(w))
            {
                self.count += 1;
                if self.samples.len() < Self::SAMPLES && !self.samples.iter().any(|s| s == line) {
                    self.samples.push(line.chars().take(300).collect());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_warnings_from_every_log_style() {
        let log = "2026 INFO listening\n2026 WARN backend connect failed\n[WARNING]  (1) : x\n\
                   [NOTICE] (1) : started\n2026/01/01 [error] 5#5: *1 upstream timed out\n2026 WARN backend connect failed\n";
        let mut n = LogNotes::default();
        n.add_log(log);
        assert_eq!(n.count, 4);
        assert_eq!(n.samples.len(), 3, "duplicates are listed once");
    }

    #[test]
    fn median_and_range_over_rounds() {
        let mut m = Measured::new(Target::Balancer);
        for g in [3.0, 1.0, 2.0, 10.0] {
            let mut r = Run::default();
            r.one.gbps = g;
            m.runs.push(r);
        }
        assert!((m.median(ONE) - 2.5).abs() < 1e-9);
        assert_eq!(m.range(ONE), (1.0, 10.0));
        m.runs.pop();
        assert!((m.median(ONE) - 2.0).abs() < 1e-9);
    }
}
