//! Benchmarks against peers. Figures are reported, never asserted: a
//! benchmark prints a table and its ratios, writes results, method and a
//! chart under `docs/bench/`, and leaves judging them to a person.
//!
//! The proxy benchmark is split by concern: `proxy` runs it, `peers` knows
//! each target's config and lifecycle, `load` drives iperf3 and wrk, `idle`
//! measures memory per idle connection, `env` records versions, `figures`
//! holds what was measured, `report` renders the table, ratios and JSON,
//! `doc` renders the markdown page. Every benchmark writes its page through
//! `page`, which regenerates the figures and keeps the hand-written
//! analysis.

mod control;
mod doc;
mod env;
mod figures;
mod guard;
mod http;
mod idle;
mod load;
pub(crate) mod page;
mod peers;
pub(crate) mod proxy;
mod report;
mod summary;
mod tls;
mod tls_page;
mod udp;
mod xdp;

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// The XDP program's cost per packet beside a bare `XDP_TX` program.
    Xdp {
        /// Rounds; the report shows each figure's median and range.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
        rounds: u32,
        /// Another commit (any git revision) whose XDP program runs beside
        /// this one's, interleaved: an A/B comparison in one run.
        #[arg(long)]
        against: Option<String>,
    },
    /// The guard's cost per verdict beside a bare `XDP_DROP`, and a flood
    /// absorbed on veth.
    Guard {
        /// Rounds; the report shows each figure's median and range.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
        rounds: u32,
    },
    /// Failover time, reload time with 10,000 backends, cost of scraping.
    Control {
        /// Rounds; the report shows each figure's median and range.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
        rounds: u32,
    },
    /// The HTTP layer vs HAProxy (mode http) and nginx (http proxy).
    Http {
        /// Rounds over every target; the report shows each figure's median
        /// and range. Idle memory is measured in the first round only.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
        rounds: u32,
    },
    /// TLS termination vs HAProxy and nginx: handshakes, resumption,
    /// HTTPS keep-alive and bulk; rustls providers compared.
    Tls {
        /// Rounds over every target; the report shows each figure's median
        /// and range.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
        rounds: u32,
    },
    /// UDP proxy vs nginx stream (UDP) and direct: request/response pairs
    /// per second.
    Udp {
        /// Rounds over every target; the report shows each figure's median
        /// and range.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
        rounds: u32,
    },
    /// Every benchmark above with its default rounds, then the summary
    /// page (`docs/bench/README.md`). Takes about an hour.
    All,
    /// Only rewrites `docs/bench/README.md` from the pages' JSON files.
    Summary,
    /// Proxy plane vs direct, HAProxy and nginx stream.
    Proxy {
        /// Rounds over every target; the report shows each figure's median
        /// and range. Idle memory is measured in the first round only.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
        rounds: u32,
    },
}

/// Runs the chosen benchmark from the workspace root, then rewrites the
/// summary page so it never shows older figures than the pages.
pub fn run(root: &Path, which: &Which) -> Result<()> {
    match which {
        Which::Proxy { rounds } => proxy::run(root, *rounds)?,
        Which::Http { rounds } => http::run(root, *rounds)?,
        Which::Tls { rounds } => tls::run(root, *rounds)?,
        Which::Xdp { rounds, against } => xdp::run(root, *rounds, against.as_deref())?,
        Which::Guard { rounds } => guard::run(root, *rounds)?,
        Which::Control { rounds } => control::run(root, *rounds)?,
        Which::Udp { rounds } => udp::run(root, *rounds)?,
        Which::All => {
            xdp::run(root, 3, None)?;
            guard::run(root, 3)?;
            control::run(root, 3)?;
            proxy::run(root, 2)?;
            udp::run(root, 3)?;
            http::run(root, 2)?;
            tls::run(root, 2)?;
        }
        Which::Summary => {}
    }
    summary::write(root)
}

/// One benchmark round's figures by name, as an example printed them.
type Run = serde_json::Map<String, serde_json::Value>;

/// The median, lowest and highest of figure `key` over `runs`.
fn median_range(runs: &[Run], key: &str) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs
        .iter()
        .filter_map(|m| m.get(key).and_then(serde_json::Value::as_f64))
        .collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The median, lowest and highest of `v` (sorted in place); NaN for each
/// when `v` is empty.
fn spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    match (v.first(), v.last()) {
        (Some(&lo), Some(&hi)) => (v[v.len() / 2], lo, hi),
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

/// `n` as a float, for ratios and averages of counts that stay far below
/// 2^52.
fn float(n: u64) -> f64 {
    n as f64
}
