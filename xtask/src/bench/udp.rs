//! `cargo xtask bench udp`: request/response pairs per second through the
//! UDP proxy, against nginx's stream proxy and the backend reached
//! directly, in the namespaces of the proxy benchmark. The backends are
//! nginx answering every datagram (`return`); the load is
//! `balancer-tests`' `udp_load` (64 client sockets, one request each in
//! flight). Writes `docs/bench/udp.md` and a JSON file.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use balancer_tests::{
    Netns, Process,
    topology::{Topology, VIP4, backend_addr},
};

use super::page::{ANALYSIS, Page};
use crate::shell;

/// The backends' UDP port and the VIP's.
const PORT: u16 = 53;
/// Backend namespaces.
const BACKENDS: usize = 2;
/// Client sockets, each one request in flight (a proxy sees as many clients).
const SOCKETS: u32 = 64;
/// Seconds of load per measurement.
const SECONDS: u32 = 5;
/// Payload of each request, bytes (a DNS query's size).
const SIZE: u32 = 64;

/// What the load is sent to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Direct,
    Balancer,
    Nginx,
}

impl Target {
    const ALL: [Target; 3] = [Target::Direct, Target::Balancer, Target::Nginx];

    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Balancer => "balancer",
            Target::Nginx => "nginx",
        }
    }

    fn addr(self) -> SocketAddr {
        match self {
            Target::Direct => backend_addr(0, PORT, false),
            _ => SocketAddr::new(VIP4.into(), PORT),
        }
    }
}

/// Runs the benchmark.
pub fn run(root: &Path, rounds: u32) -> Result<()> {
    shell::cargo(root, &["build", "--release", "-p", "balancer"])?;
    shell::cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "balancer-tests",
            "--bin",
            "udp_load",
        ],
    )?;
    let bin = root.join("target/release/balancer");
    let load = root.join("target/release/udp_load");
    let started = Instant::now();
    let topo = Topology::new(BACKENDS);
    super::proxy::prepare(&topo);
    let _backends: Vec<Process> = (0..BACKENDS)
        .map(|i| {
            start_nginx(
                &topo.backends[i],
                &topo,
                &format!("b{}", i + 1),
                &backend_conf(i),
            )
        })
        .collect::<Result<_>>()?;
    // Rates by target, one per round; the targets take turns within a
    // round, so a drift of the machine lands on all alike.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Target::ALL.len()];
    let mut lost = vec![0u64; Target::ALL.len()];
    for round in 1..=rounds {
        for (i, t) in Target::ALL.into_iter().enumerate() {
            let proxy = start(&topo, &bin, t)?;
            let r = measure(&topo.client, &load, t.addr());
            if let Some(p) = proxy {
                super::peers::stop(&topo.lb, p);
            }
            let (rate, l) = r.with_context(|| format!("{}: measurement failed", t.name()))?;
            eprintln!(
                "bench udp: round {round}/{rounds}: {}: {rate:.0} pairs/s, {l} lost",
                t.name()
            );
            rates[i].push(rate);
            lost[i] += l;
        }
    }
    let seconds = started.elapsed().as_secs();
    drop(topo);
    publish(root, rounds, seconds, &rates, &lost)
}

/// One measurement: pairs per second and requests lost.
fn measure(client: &Netns, load: &Path, to: SocketAddr) -> Result<(f64, u64)> {
    let args = [
        "--to".to_owned(),
        to.to_string(),
        "--sockets".to_owned(),
        SOCKETS.to_string(),
        "--threads".to_owned(),
        "2".to_owned(),
        "--seconds".to_owned(),
        SECONDS.to_string(),
        "--size".to_owned(),
        SIZE.to_string(),
    ];
    let limit = Duration::from_secs(u64::from(SECONDS) + 15);
    let (ok, out, err) =
        super::load::bounded(client, limit, load.to_str().context("utf-8 path")?, &args)?;
    if !ok {
        bail!("udp_load to {to} failed: {}", err.trim());
    }
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .with_context(|| format!("cannot read udp_load's output: {out}"))?;
    let rate = v["rate"].as_f64().context("no rate in udp_load's output")?;
    let lost = v["lost"].as_u64().unwrap_or(0);
    Ok((rate, lost))
}

/// Starts the proxy `t` in the balancer's namespace (`None` for direct).
fn start(topo: &Topology, bin: &Path, t: Target) -> Result<Option<Process>> {
    match t {
        Target::Direct => Ok(None),
        Target::Balancer => Ok(Some(topo.start_balancer_bin(bin, &balancer_yaml(), 1))),
        Target::Nginx => start_nginx(&topo.lb, topo, "proxy", &nginx_proxy_conf()).map(Some),
    }
}

/// nginx with stream config `body` in `ns`, once its UDP port is bound.
fn start_nginx(ns: &Netns, topo: &Topology, name: &str, body: &str) -> Result<Process> {
    let dir = topo.dir.path().display().to_string();
    let conf = topo.path(&format!("nginx-udp-{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
             user root;\nworker_processes {};\ndaemon off;\npid {dir}/nginx-udp-{name}.pid;\n\
             error_log stderr warn;\nevents {{ worker_connections 8192; }}\n{body}",
            if name == "proxy" { 2 } else { 1 }
        ),
    )?;
    let mut cmd = ns.command("nginx");
    cmd.args(["-e", "stderr", "-c"]).arg(&conf);
    let p = Process::spawn(
        &format!("nginx udp {name}"),
        cmd,
        topo.path(&format!("nginx-udp-{name}.log")),
    );
    super::peers::wait_udp(ns, &[PORT], Duration::from_secs(10))
        .map_err(|e| e.context(format!("nginx {name} did not start:\n{}", p.output())))?;
    Ok(p)
}

/// Backend `i`: answers every datagram with one of its own.
fn backend_conf(i: usize) -> String {
    format!(
        "stream {{ server {{ listen {} udp reuseport; return \"backend-{}\\n\"; }} }}\n",
        backend_addr(i, PORT, false),
        i + 1
    )
}

/// nginx at its best for request/response UDP: one response ends the
/// session (`proxy_responses 1`), a socket per worker (`reuseport`).
fn nginx_proxy_conf() -> String {
    let servers = (0..BACKENDS).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "    server {};", backend_addr(i, PORT, false));
        s
    });
    format!(
        "stream {{\n  upstream u {{\n{servers}  }}\n  server {{\n    listen {VIP4}:{PORT} udp reuseport;\n    \
         proxy_pass u;\n    proxy_responses 1;\n    proxy_timeout 5s;\n  }}\n}}\n"
    )
}

fn balancer_yaml() -> String {
    let mut y = format!(
        "version: 1\nshutdown_grace: 1s\nlisteners:\n\
         \x20 - {{ name: dns, address: \"{VIP4}:{PORT}\", protocol: udp, mode: proxy, pool: u }}\n\
         pools:\n  - name: u\n    algorithm: round_robin\n    backends:\n"
    );
    for i in 0..BACKENDS {
        let _ = writeln!(y, "      - address: {}", backend_addr(i, PORT, false));
    }
    y
}

fn median_range(v: &[f64]) -> (f64, f64, f64) {
    super::spread(&mut v.to_vec())
}

fn publish(root: &Path, rounds: u32, seconds: u64, rates: &[Vec<f64>], lost: &[u64]) -> Result<()> {
    let mut table =
        String::from("| target | pairs/s (median) | range | requests lost |\n|---|---|---|---|\n");
    let mut figures = serde_json::Map::new();
    for (i, t) in Target::ALL.into_iter().enumerate() {
        let (m, lo, hi) = median_range(&rates[i]);
        let _ = writeln!(
            table,
            "| {} | {m:.0} | {lo:.0}-{hi:.0} | {} |",
            t.name(),
            lost[i]
        );
        println!(
            "{:<10} {m:>10.0} pairs/s  [{lo:.0}-{hi:.0}]  {} lost",
            t.name(),
            lost[i]
        );
        figures.insert(
            t.name().to_owned(),
            serde_json::json!({ "median": m, "low": lo, "high": hi, "runs": rates[i], "lost": lost[i] }),
        );
    }
    let ratio = |a: usize, b: usize| median_range(&rates[a]).0 / median_range(&rates[b]).0;
    let vs_nginx = ratio(1, 2);
    let vs_direct = ratio(1, 0);
    figures.insert(
        "ratios".to_owned(),
        serde_json::json!({ "balancer_nginx": vs_nginx, "balancer_direct": vs_direct }),
    );
    let met = if vs_nginx >= 1.2 { "met" } else { "MISS" };
    let page = Page::new(root, "udp")?;
    let json = page.write_json(&serde_json::Value::Object(figures))?;
    let doc = page.write(&format!(
        "# UDP proxy benchmark: request/response pairs per second\n\n\
         Generated by `cargo xtask bench udp` ({rounds} rounds, median and range, {seconds} s). Everything above\n\
         `{ANALYSIS}` is rewritten on each run. Raw figures: [udp.json](udp.json).\n\n\
         ## Results\n\n{table}\n\
         | comparison | ratio | goal | met |\n|---|---|---|---|\n\
         | pairs/s, balancer / nginx | {vs_nginx:.2}x | >= 1.20 | {met} |\n\
         | pairs/s, balancer / direct | {vs_direct:.2}x | (reported) | |\n\n\
         ## Method\n\n\
         The proxy benchmark's namespaces: a client, the proxy (VIP {VIP4}) and {BACKENDS} backends on a bridge.\n\
         Each backend runs nginx answering every datagram with one of its own (`return`, one worker).\n\
         The load is `udp_load` from `balancer-tests`: {SOCKETS} client sockets over 2 threads, each with\n\
         one {SIZE}-byte request in flight, sending the next as soon as the answer arrives, for {SECONDS} s;\n\
         a request unanswered for 200 ms counts as lost and is sent again. Targets take turns within each\n\
         round. The balancer: one `proxy`-mode UDP listener, round robin over both backends, a session per\n\
         client. nginx (stream, 2 workers): `proxy_responses 1` (one answer ends the session) and\n\
         `reuseport`, its best settings for request/response traffic. Direct: the client to backend 1,\n\
         routed through the proxy's namespace by the kernel. All processes share the machine's two CPUs.\n"
    ))?;
    println!("wrote {} and {}", doc.display(), json.display());
    Ok(())
}
