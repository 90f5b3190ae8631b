//! The proxy benchmark's renderings: the table (plain for the terminal,
//! markdown with ranges over rounds for the page), the ratios against the
//! project's targets (reported, never asserted) and the JSON the chart is
//! drawn from.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    env::Environment,
    figures::{FOUR, Measured, Metric, ONE, P50, P99, RATE},
    idle, load,
    peers::Target,
};

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Versions and host.
    pub env: Environment,
    /// One entry per target, in [`Target::ALL`] order.
    pub results: Vec<Measured>,
    /// `(target, file name, text)` of every config that ran.
    pub configs: Vec<(Target, &'static str, String)>,
    /// Connection rate and memory with many idle connections held.
    pub concurrency: Vec<super::proxy::HeldPoint>,
    /// Rounds over all targets.
    pub rounds: u32,
    /// Wall time of the measurements, seconds.
    pub seconds: u64,
}

/// Which figure a goal compares.
#[derive(Clone, Copy)]
enum Figure {
    /// Median of a load metric over the rounds.
    Median(Metric),
    /// Memory per idle connection.
    Rss,
}

/// Which side of a ratio is good.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// A goal of the project, stated as a ratio between two targets.
struct Goal {
    what: &'static str,
    num: Target,
    den: Target,
    figure: Figure,
    bound: Bound,
    unit: &'static str,
}

const GOALS: [Goal; 6] = [
    Goal {
        what: "throughput 1 stream, balancer / HAProxy",
        num: Target::Balancer,
        den: Target::Haproxy,
        figure: Figure::Median(ONE),
        bound: Bound::AtLeast(1.1),
        unit: "Gbit/s",
    },
    Goal {
        what: "throughput 4 streams, balancer / HAProxy",
        num: Target::Balancer,
        den: Target::Haproxy,
        figure: Figure::Median(FOUR),
        bound: Bound::AtLeast(1.1),
        unit: "Gbit/s",
    },
    Goal {
        what: "throughput 1 stream, balancer / direct",
        num: Target::Balancer,
        den: Target::Direct,
        figure: Figure::Median(ONE),
        bound: Bound::AtLeast(0.8),
        unit: "Gbit/s",
    },
    Goal {
        what: "throughput 4 streams, balancer / direct",
        num: Target::Balancer,
        den: Target::Direct,
        figure: Figure::Median(FOUR),
        bound: Bound::AtLeast(0.8),
        unit: "Gbit/s",
    },
    Goal {
        what: "connection rate, balancer / HAProxy",
        num: Target::Balancer,
        den: Target::Haproxy,
        figure: Figure::Median(RATE),
        bound: Bound::AtLeast(1.1),
        unit: "conn/s",
    },
    Goal {
        what: "RSS per idle connection, balancer / nginx",
        num: Target::Balancer,
        den: Target::Nginx,
        figure: Figure::Rss,
        bound: Bound::AtMost(1.0),
        unit: "KiB",
    },
];

/// A goal as measured.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// What is compared.
    pub what: &'static str,
    /// The goal, as text (`>= 1.10`).
    pub goal: String,
    /// The ratio, when both sides were measured.
    pub value: Option<f64>,
    /// Whether the goal is met.
    pub met: Option<bool>,
    /// The two figures compared.
    pub detail: String,
}

const HEADER: [&str; 8] = [
    "target",
    "1 stream Gbit/s",
    "4 streams Gbit/s",
    "conn/s",
    "p50 ms",
    "p99 ms",
    "wrk errors",
    "RSS KiB/idle conn",
];

impl Report {
    fn get(&self, t: Target) -> Option<&Measured> {
        self.results.iter().find(|m| m.target == t)
    }

    fn figure(&self, t: Target, f: Figure) -> Option<f64> {
        let m = self.get(t).filter(|m| !m.runs.is_empty())?;
        match f {
            Figure::Median(metric) => Some(m.median(metric)),
            Figure::Rss => m.rss_per_conn(),
        }
    }

    /// The ratios the project's targets are stated in.
    pub fn ratios(&self) -> Vec<Ratio> {
        GOALS
            .iter()
            .map(|g| {
                let (num, den) = (self.figure(g.num, g.figure), self.figure(g.den, g.figure));
                let value = num.zip(den).filter(|(_, d)| *d > 0.0).map(|(n, d)| n / d);
                let (goal, met) = match g.bound {
                    Bound::AtLeast(min) => (format!(">= {min:.2}"), value.map(|v| v >= min)),
                    Bound::AtMost(max) => (format!("<= {max:.2}"), value.map(|v| v <= max)),
                };
                let show =
                    |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"));
                let detail = format!("{} vs {} {}", show(num), show(den), g.unit);
                Ratio {
                    what: g.what,
                    goal,
                    value,
                    met,
                    detail,
                }
            })
            .collect()
    }

    /// Table cells; with `ranges`, load figures carry `[min-max]` over rounds.
    fn rows(&self, ranges: bool) -> Vec<[String; 8]> {
        self.results
            .iter()
            .map(|m| {
                let cell = |metric: Metric, precision: usize| {
                    let median = format!("{:.precision$}", m.median(metric));
                    if ranges && m.runs.len() > 1 {
                        let (lo, hi) = m.range(metric);
                        format!("{median} [{lo:.precision$}-{hi:.precision$}]")
                    } else {
                        median
                    }
                };
                [
                    m.target.name().to_owned(),
                    cell(ONE, 2),
                    cell(FOUR, 2),
                    cell(RATE, 0),
                    cell(P50, 2),
                    cell(P99, 2),
                    m.wrk_errors().to_string(),
                    m.rss_per_conn()
                        .map_or_else(|| "n/a".to_owned(), |k| format!("{k:.2}")),
                ]
            })
            .collect()
    }

    /// The table and the ratios for the terminal.
    pub fn text(&self) -> String {
        let rows = self.rows(false);
        let mut widths = HEADER.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        let mut out = format!(
            "median of {} round(s); ranges in docs/bench/proxy.md\n",
            self.rounds
        );
        out += &line(&HEADER.map(str::to_owned));
        for r in &rows {
            out += &line(r);
        }
        out += "\nratios (reported, not asserted):\n";
        for r in self.ratios() {
            let _ = writeln!(
                out,
                "  {:<44} {:>6}  goal {}  {:<4}  ({})",
                r.what,
                show_ratio(&r),
                r.goal,
                verdict(&r),
                r.detail
            );
        }
        out
    }

    /// The table in markdown, with ranges over rounds.
    pub fn markdown_table(&self) -> String {
        let mut out = format!(
            "| {} |\n|{}\n",
            HEADER.join(" | "),
            "---|".repeat(HEADER.len())
        );
        for r in self.rows(true) {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out
    }

    /// The ratios in markdown.
    pub fn markdown_ratios(&self) -> String {
        let mut out =
            "| comparison | ratio | goal | met | figures |\n|---|---|---|---|---|\n".to_owned();
        for r in self.ratios() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.what,
                show_ratio(&r),
                r.goal,
                verdict(&r),
                r.detail
            );
        }
        out
    }

    /// Everything as JSON (`docs/bench/proxy.json`, read by the chart script).
    pub fn json(&self) -> Value {
        let targets: Vec<Value> = self.results.iter().map(Measured::json).collect();
        let ratios: Vec<Value> = self
            .ratios()
            .iter()
            .map(|r| json!({ "what": r.what, "goal": r.goal, "value": r.value, "met": r.met, "figures": r.detail }))
            .collect();
        let env: serde_json::Map<String, Value> = self
            .env
            .rows()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        let concurrency: Vec<Value> = self
            .concurrency
            .iter()
            .map(|h| json!({ "target": h.target.name(), "held": h.held, "conn_rate": h.rate, "rss_kib_per_held_conn": h.kib }))
            .collect();
        json!({
            "benchmark": "proxy",
            "concurrency": concurrency,
            "environment": env,
            "settings": {
                "rounds": self.rounds,
                "iperf3_seconds": load::IPERF_SECS,
                "iperf3_omit_seconds": load::IPERF_OMIT,
                "wrk_seconds": load::WRK_SECS,
                "wrk_threads": load::WRK_THREADS,
                "wrk_connections": load::WRK_CONNS,
                "idle_connections": idle::CONNECTIONS,
                "wall_seconds": self.seconds,
            },
            "targets": targets,
            "ratios": ratios,
        })
    }
}

fn show_ratio(r: &Ratio) -> String {
    r.value
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}x"))
}

fn verdict(r: &Ratio) -> &'static str {
    match r.met {
        Some(true) => "met",
        Some(false) => "MISS",
        None => "n/a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{figures::Run, idle::IdleRss};

    fn measured(target: Target, gbps: &[f64], rss: Option<(u64, u64)>) -> Measured {
        let mut m = Measured::new(target);
        for g in gbps {
            let mut r = Run::default();
            r.one.gbps = *g;
            r.four.gbps = *g;
            r.wrk.rate = *g * 1000.0;
            m.runs.push(r);
        }
        m.idle = rss.map(|(before_kib, after_kib)| IdleRss {
            opened: 1000,
            upstream: 1000,
            processes: 1,
            before_kib,
            after_kib,
        });
        m
    }

    #[test]
    fn ratios_use_medians_and_bounds() {
        let report = Report {
            env: Environment::default(),
            results: vec![
                measured(Target::Direct, &[20.0, 20.0], None),
                measured(Target::Balancer, &[11.0, 12.0, 13.0], Some((1000, 4000))),
                measured(Target::Haproxy, &[10.0], Some((1000, 5000))),
                measured(Target::Nginx, &[5.0], Some((1000, 3000))),
            ],
            configs: Vec::new(),
            concurrency: Vec::new(),
            rounds: 3,
            seconds: 1,
        };
        let r = report.ratios();
        assert!((r[0].value.expect("b/h") - 1.2).abs() < 1e-9);
        assert_eq!(r[0].met, Some(true));
        assert_eq!(r[2].met, Some(false), "12/20 < 0.8");
        assert!((r[5].value.expect("rss") - 1.5).abs() < 1e-9);
        assert_eq!(r[5].met, Some(false), "3 KiB vs 2 KiB is over nginx");
        assert!(report.markdown_table().contains("| 12.00 [11.00-13.00] |"));
        assert!(report.text().contains("12.00"));
    }
}
