//! `cargo xtask bench proxy`: builds the release binary, builds one
//! namespace topology with real backends (three nginx, one iperf3 server),
//! then measures each target in turn (direct, balancer, HAProxy, nginx
//! stream), each proxy alone on the same VIP, for a few interleaved rounds
//! so slow drifts in the machine's load hit every target alike, and
//! reports. The topology's guards delete every namespace on the way out,
//! also on error.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use balancer_tests::{Process, Topology, nginx, sys};

use super::{
    doc,
    env::Environment,
    figures::{Measured, Run},
    idle, load,
    page::Page,
    peers::{self, BACKENDS, HTTP_PORT, IPERF_PORT, Target},
    report::Report,
};
use crate::shell;

/// Runs the benchmark and writes `docs/bench/proxy.{md,json,png}`.
pub fn run(root: &Path, rounds: u32) -> Result<()> {
    shell::cargo(root, &["build", "--release", "-p", "balancer"])?;
    let bin = root.join("target/release/balancer");
    let (soft, hard) = sys::raise_nofile_limit().context("cannot raise the open-files limit")?;
    // A proxy holds two descriptors per idle connection, the bench one.
    ensure!(
        soft >= u64::from(idle::CONNECTIONS) * 2 + 1_000,
        "the open-files limit ({soft}, hard {hard}) is too low for {} idle proxied connections",
        idle::CONNECTIONS
    );
    let env = Environment::probe(&bin);
    let started = Instant::now();
    let (results, configs, concurrency) = {
        let topo = Topology::new(BACKENDS);
        prepare(&topo);
        let _servers = start_servers(&topo)?;
        let mut results = Target::ALL.map(Measured::new);
        for round in 1..=rounds {
            for m in &mut results {
                eprintln!("bench: round {round}/{rounds}: {}", m.target);
                measure(&topo, &bin, m, round == 1)?;
            }
        }
        let curve = concurrency(&topo, &bin)?;
        let configs = Target::ALL
            .into_iter()
            .filter_map(|t| {
                t.config(topo.dir.path())
                    .map(|(file, text)| (t, file, text))
            })
            .collect();
        (results.into(), configs, curve)
    };
    let report = Report {
        env,
        results,
        configs,
        concurrency,
        rounds,
        seconds: started.elapsed().as_secs(),
    };
    print!("\n{}", report.text());

    Page::new(root, "proxy")?.publish(root, &report.json(), &doc::render(&report))?;
    Ok(())
}

/// Idle connections held while the connection rate is measured.
pub const HELD: [u32; 3] = [1_000, 5_000, 9_000];

/// The connection rate and memory per connection with [`HELD`] idle
/// connections open, for the balancer and HAProxy (fresh proxy each).
fn concurrency(topo: &Topology, bin: &Path) -> Result<Vec<HeldPoint>> {
    let mut out = Vec::new();
    for target in [Target::Balancer, Target::Haproxy] {
        for held in HELD {
            let proxy = peers::start(topo, bin, target)?;
            let to = target.http_addr();
            let r = idle::measure_with(topo, to, held, || load::wrk(&topo.client, to));
            if let Some(p) = proxy {
                peers::stop(&topo.lb, p);
            }
            let (idle, wrk) =
                r.with_context(|| format!("{target} with {held} idle connections"))?;
            eprintln!(
                "bench: {target}: {held} held: {:.0} conn/s, {:.2} KiB per idle connection",
                wrk.rate,
                idle.per_conn_kib()
            );
            out.push(HeldPoint {
                target,
                held,
                rate: wrk.rate,
                kib: idle.per_conn_kib(),
            });
        }
    }
    Ok(out)
}

/// One point of the concurrency curve.
#[derive(Clone, Debug)]
pub struct HeldPoint {
    /// The proxy.
    pub target: Target,
    /// Idle connections held open.
    pub held: u32,
    /// New connections per second meanwhile (wrk, `Connection: close`).
    pub rate: f64,
    /// Resident memory per held connection, KiB.
    pub kib: f64,
}

/// Kernel forwarding for the direct target, and ephemeral-port settings so
/// short-connection runs are not limited by `TIME_WAIT`. Only namespaces the
/// bench created are touched.
pub(super) fn prepare(topo: &Topology) {
    topo.route_direct();
    for ns in [&topo.client, &topo.lb] {
        ns.sysctl("net.ipv4.ip_local_port_range", "1024 65000");
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1");
    }
}

/// nginx on port 80 in every backend, `iperf3 -s` in backend 1.
fn start_servers(topo: &Topology) -> Result<Vec<Process>> {
    let mut servers = nginx::start_all(topo, HTTP_PORT, false);
    let mut cmd = topo.backends[0].command("iperf3");
    cmd.args(["-s", "-p", &IPERF_PORT.to_string()]);
    servers.push(Process::spawn(
        "iperf3 server",
        cmd,
        topo.path("iperf3-server.log"),
    ));
    peers::wait_listening(&topo.backends[0], &[IPERF_PORT], Duration::from_secs(10))?;
    Ok(servers)
}

/// One round for `m`'s target: start it, measure idle memory on the fresh
/// process when `idle` (proxies only), then throughput and connection
/// rate; stop it whatever happened and keep what its log said.
fn measure(topo: &Topology, bin: &Path, m: &mut Measured, idle: bool) -> Result<()> {
    let target = m.target;
    let proxy = peers::start(topo, bin, target)?;
    let result = (|| -> Result<()> {
        if idle && proxy.is_some() {
            let i = idle::measure(topo, target.http_addr())?;
            eprintln!(
                "bench: {target}: {} idle connections: {:.2} KiB RSS each ({} -> {} KiB over {} processes)",
                i.opened,
                i.per_conn_kib(),
                i.before_kib,
                i.after_kib,
                i.processes
            );
            m.idle = Some(i);
        }
        let one = load::iperf(&topo.client, target.iperf_addr(), 1)?;
        eprintln!("bench: {target}: iperf3 1 stream: {:.2} Gbit/s", one.gbps);
        let four = load::iperf(&topo.client, target.iperf_addr(), 4)?;
        eprintln!("bench: {target}: iperf3 4 streams: {:.2} Gbit/s", four.gbps);
        let wrk = load::wrk(&topo.client, target.http_addr())?;
        eprintln!(
            "bench: {target}: wrk: {:.0} conn/s, p99 {:.2} ms, {} errors",
            wrk.rate,
            wrk.p99_ms,
            wrk.errors + wrk.non_2xx
        );
        m.runs.push(Run { one, four, wrk });
        Ok(())
    })();
    let log = proxy.map(|p| peers::stop(&topo.lb, p)).unwrap_or_default();
    let before = m.log.count;
    m.log.add_log(&log);
    if m.log.count > before {
        eprintln!(
            "bench: {target}: {} warning/error line(s) in its log",
            m.log.count - before
        );
    }
    result.with_context(|| {
        format!(
            "{target}: measurement failed; its log ends:\n{}",
            peers::log_tail(&log)
        )
    })
}

/// Debian's interpreter, which the `python3-matplotlib` package installs
/// for, ahead of whatever `python3` a version manager puts first on PATH.
pub(crate) fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}
