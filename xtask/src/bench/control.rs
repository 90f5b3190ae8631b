//! `cargo xtask bench control`: how fast a dead backend leaves the
//! rotation, how long a reload of a config with 10,000 backends takes, and
//! what Prometheus scraping costs the proxy's connection rate. Writes
//! `docs/bench/control.md` and a JSON file.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use balancer_tests::{
    Process, Topology, nginx,
    sys::{ms_between, now_of_day},
    topology::{VIP4, backend_addr},
    write_config,
};
use serde_json::json;

use super::{
    load,
    page::{ANALYSIS, Page},
};
use crate::shell;

const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 250;
const FALL: u64 = 2;
const RELOAD_BACKENDS: usize = 10_000;
const RELOADS: usize = 5;

fn config(health: bool) -> String {
    let check = if health {
        format!(
            "    health: {{ kind: http, interval: {INTERVAL_MS}ms, timeout: {TIMEOUT_MS}ms, jitter: 1ms, rise: 2, fall: {FALL}, passive: false }}\n"
        )
    } else {
        String::new()
    };
    let backends = (0..3).fold(String::new(), |mut out, i| {
        let _ = writeln!(out, "      - address: \"{}\"", backend_addr(i, 80, false));
        out
    });
    format!(
        "version: 1\nlisteners:\n  - {{ name: web, address: \"{VIP4}:80\", protocol: tcp, mode: proxy, pool: p }}\n\
         pools:\n  - name: p\n    algorithm: round_robin\n{check}    backends:\n{backends}"
    )
}

/// One maglev pool of 10,000 backends (none needs to exist: no checks).
fn big_config(weight: u32) -> String {
    let mut y = format!(
        "version: 1\nlisteners:\n  - {{ name: web, address: \"{VIP4}:80\", protocol: tcp, mode: proxy, pool: big }}\n\
         pools:\n  - name: big\n    algorithm: maglev\n    maglev_table_size: 65537\n    backends:\n"
    );
    for i in 0..RELOAD_BACKENDS {
        let _ = writeln!(
            y,
            "      - {{ address: \"198.19.{}.{}:80\", weight: {weight} }}",
            i / 250,
            1 + i % 250
        );
    }
    y
}

/// Milliseconds from a backend's stop to the daemon marking it down.
fn failover(t: &Topology, bin: &Path, servers: &mut Vec<Process>) -> Result<f64> {
    let lb = t.start_balancer_bin(bin, &config(true), 1);
    std::thread::sleep(Duration::from_secs(1));
    let mut stopped = servers.remove(1);
    stopped.signal(libc::SIGTERM);
    stopped
        .wait_timeout(Duration::from_secs(5))
        .context("nginx did not stop")?;
    let at = now_of_day();
    drop(stopped);
    let down = lb.logged_at(&["198.18.1.12:80", "to=down"], Duration::from_secs(10));
    servers.insert(
        1,
        nginx::start(
            &t.backends[1],
            t.dir.path(),
            "backend-2",
            &[backend_addr(1, 80, false)],
        ),
    );
    Ok(ms_between(at, down))
}

/// Milliseconds per reload of a config with 10,000 backends, as the admin
/// API answers it (parse, validate, rebuild the pool and its Maglev table).
fn reload_times(t: &Topology, bin: &Path) -> Result<Vec<f64>> {
    let _lb = t.start_balancer_bin(bin, &big_config(100), 1);
    let mut times = Vec::new();
    for n in 0..RELOADS {
        write_config(t.dir.path(), &big_config(if n % 2 == 0 { 50 } else { 100 }));
        let out = t.lb.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_total}",
                "-X",
                "POST",
                "--max-time",
                "30",
                "http://127.0.0.1:9900/reload",
            ],
        );
        let (code, secs) = out.split_once(' ').context("curl printed no timing")?;
        anyhow::ensure!(code == "200", "reload answered {code}");
        times.push(secs.trim().parse::<f64>().context("curl's time")? * 1000.0);
    }
    Ok(times)
}

/// Connections per second through the proxy, with and without a scraper
/// fetching `/metrics` every 100 ms meanwhile.
fn metrics_cost(t: &Topology, bin: &Path) -> Result<(f64, f64)> {
    let _lb = t.start_balancer_bin(bin, &config(false), 1);
    let to = (VIP4, 80).into();
    let quiet = load::wrk(&t.client, to)?.rate;
    let mut scraper = t.lb.command("sh");
    scraper.args([
        "-c",
        "i=0; while [ $i -lt 600 ]; do curl -s -o /dev/null http://127.0.0.1:9900/metrics; sleep 0.1; i=$((i+1)); done",
    ]);
    let running = Process::spawn("scraper", scraper, t.dir.path().join("scraper.log"));
    let busy = load::wrk(&t.client, to)?.rate;
    drop(running);
    Ok((quiet, busy))
}

fn median(v: &mut [f64]) -> f64 {
    super::spread(v).0
}

/// Runs the benchmark and writes `docs/bench/control.{md,json}`.
pub fn run(root: &Path, rounds: u32) -> Result<()> {
    shell::cargo(root, &["build", "--release", "-p", "balancer"])?;
    let bin = root.join("target/release/balancer");
    let topo = Topology::new(3);
    // Short connections by the ten thousand: room in the port range and
    // TIME_WAIT reuse, as in the proxy benchmark.
    super::proxy::prepare(&topo);
    let t = &topo;
    let mut servers = nginx::start_all(t, 80, false);
    let mut failovers = Vec::new();
    let mut reloads = Vec::new();
    let mut rates = Vec::new();
    for round in 1..=rounds {
        eprintln!("bench control: round {round}/{rounds}");
        failovers.push(failover(t, &bin, &mut servers)?);
        reloads.extend(reload_times(t, &bin)?);
        rates.push(metrics_cost(t, &bin)?);
    }
    let bound = FALL * (INTERVAL_MS + TIMEOUT_MS) + 100;
    let (mut quiet, mut scraped): (Vec<f64>, Vec<f64>) = rates.iter().copied().unzip();
    let figures = json!({
        "failover_ms": failovers,
        "failover_bound_ms": bound,
        "reload_ms_10000_backends": reloads,
        "conn_per_s_quiet": quiet,
        "conn_per_s_scraped_every_100ms": scraped,
    });
    let (fail_ms, reload_ms, rate_quiet, rate_scraped) = (
        median(&mut failovers.clone()),
        median(&mut reloads.clone()),
        median(&mut quiet),
        median(&mut scraped),
    );
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.0}-{hi:.0}")
    };
    let doc = format!(
        "# Control plane benchmark\n\n\
         Generated by `cargo xtask bench control` ({rounds} rounds; median and range). Everything above `{ANALYSIS}`\n\
         is rewritten on each run. Raw figures: [control.json](control.json).\n\n\
         | figure | median | range | target |\n|---|---|---|---|\n\
         | failover: backend stopped -> marked down (http check every {INTERVAL_MS} ms, timeout {TIMEOUT_MS} ms, fall {FALL}) | {fail_ms:.0} ms | {} ms | <= fall x (interval + timeout) + 100 ms = {bound} ms |\n\
         | reload of a config with {RELOAD_BACKENDS} backends (admin API round trip) | {reload_ms:.0} ms | {} ms | < 1000 ms |\n\
         | proxy connections/s, no scraping | {rate_quiet:.0} | {} | |\n\
         | proxy connections/s, `/metrics` scraped every 100 ms | {rate_scraped:.0} | {} | |\n\n\
         ## Method\n\n\
         - Failover: three nginx backends behind the proxy plane in namespaces; nginx on backend 2 gets SIGTERM, and the time from its exit to the daemon's \
           `to=down` log line is read from the log's own timestamps. Detection is bounded by the check schedule: the next check finds the refused \
           connection at once, and `fall` of them take the backend out. Once down, the proxy never tries it (the health tests assert this).\n\
         - Reload: one `maglev` pool of {RELOAD_BACKENDS} backends (table size 65,537); each reload flips every weight between 50 and 100, so the whole \
           Maglev table is rebuilt; timed by curl around `POST /reload` (parse, validate, carry states, rebuild, swap).\n\
         - Metrics: wrk with `Connection: close` (see docs/bench/proxy.md) against the proxy, once alone and once while a shell loop fetches `/metrics` \
           every 100 ms in the balancer's namespace. The counters behind the metrics are always on (relaxed atomics the proxy bumps anyway), so the \
           difference shown is the cost of scraping, not of counting.\n",
        range(&failovers),
        range(&reloads),
        range(&rates.iter().map(|r| r.0).collect::<Vec<_>>()),
        range(&rates.iter().map(|r| r.1).collect::<Vec<_>>()),
    );
    let page = Page::new(root, "control")?;
    page.write_json(&figures)?;
    let doc = page.write(&doc)?;
    eprintln!(
        "failover {fail_ms:.0} ms (bound {bound}), reload with {RELOAD_BACKENDS} backends {reload_ms:.0} ms, conn/s {rate_quiet:.0} quiet vs {rate_scraped:.0} scraped"
    );
    eprintln!("wrote {}", doc.display());
    Ok(())
}
