//! `cargo xtask bench http`: the HTTP layer against HAProxy (`mode http`,
//! `http-reuse always`, 2 threads) and nginx (`proxy_pass` with upstream
//! keep-alive, 2 workers), all in front of the same three nginx backends,
//! each alone on the same VIP, in interleaved rounds. Per target: keep-alive
//! requests per second and latency (wrk, 50 connections), `Connection:
//! close` requests per second (wrk), HTTP/2 requests per second (h2load, 10
//! connections of 10 streams), and memory per idle keep-alive client
//! connection (9,000 held, each after one request). A fourth target,
//! `balancer/examples/hyper_floor`, is the least a hyper reverse proxy does
//! (no routing, rewriting, limits or counters): the distance from it to the
//! balancer is the layer's own cost, the distance from it to the peers is
//! hyper's. Writes `docs/bench/http.{md,json,png}`.

use std::{fmt::Write as _, net::SocketAddr, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail};
use balancer_tests::{
    Netns, Process, Topology, nginx,
    topology::{VIP4, backend_addr},
};
use serde_json::{Value, json};

use super::{
    env::Environment,
    idle,
    load::{bounded, parse_wrk},
    median_range,
    page::Page,
    peers::{log_tail, stop, wait_listening},
    proxy::prepare,
};
use crate::shell;

/// Seconds each load runs.
const SECS: u32 = 8;
/// wrk connections.
const CONNS: u32 = 50;
/// The port nginx serves HTTP/2 on (its cleartext HTTP/2 listener takes
/// nothing else); the others serve it beside HTTP/1 on port 80.
const NGINX_H2_PORT: u16 = 8082;
const PROXY_CAP: u32 = 9_500;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Balancer,
    Haproxy,
    Nginx,
    Floor,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::Balancer,
        Target::Haproxy,
        Target::Nginx,
        Target::Floor,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::Balancer => "balancer",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
            Target::Floor => "hyper_floor",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Target::Balancer => "balancer",
            Target::Haproxy => "HAProxy",
            Target::Nginx => "nginx",
            Target::Floor => "hyper floor",
        }
    }

    fn h2_port(self) -> u16 {
        if self == Target::Nginx {
            NGINX_H2_PORT
        } else {
            80
        }
    }

    fn config(self, scratch: &Path) -> (&'static str, String) {
        let backends: Vec<SocketAddr> = (0..3).map(|i| backend_addr(i, 80, false)).collect();
        match self {
            Target::Balancer => {
                let mut y = format!(
                    "version: 1\nshutdown_grace: 1s\nlisteners:\n  - name: web\n    address: {VIP4}:80\n    protocol: tcp\n    mode: http\n    pool: web\n    max_connections: {PROXY_CAP}\n    http: {{ keepalive_timeout: 5m }}\npools:\n  - name: web\n    algorithm: round_robin\n    keepalive: {{ max_idle: 64 }}\n    backends:\n"
                );
                for b in &backends {
                    let _ = writeln!(y, "      - address: {b}");
                }
                ("balancer.yaml", y)
            }
            Target::Haproxy => {
                let mut c = format!(
                    "global\n    nbthread 2\n    maxconn {PROXY_CAP}\n\ndefaults\n    mode http\n    maxconn {PROXY_CAP}\n    http-reuse always\n    option http-keep-alive\n    timeout connect 2s\n    timeout client 5m\n    timeout server 5m\n    timeout http-keep-alive 5m\n\nfrontend web\n    bind {VIP4}:80\n    default_backend web\n\nbackend web\n    balance roundrobin\n"
                );
                for (i, b) in backends.iter().enumerate() {
                    let _ = writeln!(c, "    server b{} {b}", i + 1);
                }
                ("haproxy-http.cfg", c)
            }
            Target::Nginx => {
                let d = scratch.display();
                let servers = backends.iter().fold(String::new(), |mut s, b| {
                    let _ = writeln!(s, "        server {b};");
                    s
                });
                let conf = format!(
                    "user root;\nworker_processes 2;\nworker_rlimit_nofile 20000;\ndaemon off;\npid {d}/nginx-http.pid;\nerror_log stderr warn;\nevents {{ worker_connections 19000; }}\nhttp {{\n    access_log off;\n    keepalive_timeout 5m;\n    keepalive_requests 1000000;\n    client_body_temp_path {d}/nb;\n    proxy_temp_path {d}/np;\n    fastcgi_temp_path {d}/nf;\n    uwsgi_temp_path {d}/nu;\n    scgi_temp_path {d}/ns;\n    upstream web {{\n{servers}        keepalive 64;\n    }}\n    server {{\n        listen {VIP4}:80 reuseport backlog=4096;\n        listen {VIP4}:{NGINX_H2_PORT} http2;\n        location / {{ proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n    }}\n}}\n"
                );
                ("nginx-http.conf", conf)
            }
            Target::Floor => {
                let args = backends.iter().fold(format!("{VIP4}:80"), |mut s, b| {
                    let _ = write!(s, " {b}");
                    s
                });
                ("hyper_floor.args", format!("{args}\n"))
            }
        }
    }
}

/// What one round measured for one target.
fn round(
    topo: &Topology,
    bin: &Path,
    target: Target,
    with_idle: bool,
) -> Result<serde_json::Map<String, Value>> {
    let proxy = start(topo, bin, target)?;
    let result = (|| -> Result<serde_json::Map<String, Value>> {
        let mut m = serde_json::Map::new();
        let vip = format!("http://{VIP4}:80/");
        let keep = wrk(&topo.client, &vip, false)?;
        m.insert("keepalive_rps".into(), json!(keep.rate));
        m.insert("keepalive_p50_ms".into(), json!(keep.p50_ms));
        m.insert("keepalive_p99_ms".into(), json!(keep.p99_ms));
        m.insert("keepalive_errors".into(), json!(keep.errors + keep.non_2xx));
        let close = wrk(&topo.client, &vip, true)?;
        m.insert("close_rps".into(), json!(close.rate));
        m.insert("close_p99_ms".into(), json!(close.p99_ms));
        m.insert("close_errors".into(), json!(close.errors + close.non_2xx));
        let h2 = h2load(
            &topo.client,
            &format!("http://{VIP4}:{}/", target.h2_port()),
        )?;
        m.insert("h2_rps".into(), json!(h2));
        eprintln!(
            "bench: {}: keep-alive {:.0} req/s (p99 {:.2} ms), close {:.0} req/s, h2 {h2:.0} req/s",
            target.name(),
            keep.rate,
            keep.p99_ms,
            close.rate
        );
        if with_idle {
            let i = idle::measure_http(topo, SocketAddr::new(VIP4.into(), 80))?;
            eprintln!(
                "bench: {}: {:.2} KiB per idle connection",
                target.name(),
                i.per_conn_kib()
            );
            m.insert("idle_kib_per_conn".into(), json!(i.per_conn_kib()));
        }
        Ok(m)
    })();
    let log = stop(&topo.lb, proxy);
    result.with_context(|| format!("{}: its log ends:\n{}", target.name(), log_tail(&log)))
}

fn start(topo: &Topology, bin: &Path, target: Target) -> Result<Process> {
    let (file, text) = target.config(topo.dir.path());
    if target == Target::Balancer {
        return Ok(topo.start_balancer_bin(bin, &text, 1));
    }
    let path = topo.path(file);
    std::fs::write(&path, &text)?;
    let p = match target {
        Target::Haproxy => {
            let mut cmd = topo.lb.command("haproxy");
            cmd.args(["-db", "-f"]).arg(&path);
            Process::spawn("haproxy", cmd, topo.path("haproxy-http.log"))
        }
        Target::Floor => {
            let floor = bin.with_file_name("examples").join("hyper_floor");
            let mut cmd = topo.lb.command(floor.to_str().context("utf-8 path")?);
            cmd.args(text.split_whitespace());
            Process::spawn("hyper floor", cmd, topo.path("hyper_floor.log"))
        }
        _ => {
            let mut cmd = topo.lb.command("nginx");
            cmd.args(["-e", "stderr", "-c"]).arg(&path);
            Process::spawn("nginx http", cmd, topo.path("nginx-http.log"))
        }
    };
    wait_listening(
        &topo.lb,
        &[80, target.h2_port()],
        std::time::Duration::from_secs(10),
    )?;
    Ok(p)
}

fn wrk(client: &Netns, url: &str, close: bool) -> Result<super::load::Wrk> {
    let mut args = vec![
        "-t2".to_owned(),
        format!("-c{CONNS}"),
        format!("-d{SECS}s"),
        "--timeout".into(),
        "2s".into(),
        "--latency".into(),
    ];
    if close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    args.push(url.to_owned());
    let limit = std::time::Duration::from_secs(u64::from(SECS) + 15);
    let (ok, out, err) = bounded(client, limit, "wrk", &args)?;
    if !ok {
        bail!("wrk {url}: {}", err.trim());
    }
    parse_wrk(&out)
}

/// HTTP/2 requests per second, 10 connections of 10 streams.
fn h2load(client: &Netns, url: &str) -> Result<f64> {
    let args: Vec<String> = [
        "-c",
        "10",
        "-m",
        "10",
        "-t",
        "2",
        "-D",
        &SECS.to_string(),
        url,
    ]
    .map(str::to_owned)
    .to_vec();
    let limit = std::time::Duration::from_secs(u64::from(SECS) + 15);
    let (ok, out, err) = bounded(client, limit, "h2load", &args)?;
    if !ok {
        bail!("h2load {url}: {}", err.trim());
    }
    let failed = out
        .lines()
        .find(|l| l.trim_start().starts_with("requests:"))
        .and_then(|l| l.split(',').find(|p| p.trim().ends_with("failed")))
        .and_then(|p| p.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let rate = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("finished in"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|p| p.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("cannot read h2load's output:\n{out}"))?;
    if failed > 0 {
        eprintln!("bench: h2load {url}: {failed} requests failed");
    }
    Ok(rate)
}

/// Latency at `rate` requests per second, open loop, over 50 kept-alive
/// connections for [`SECS`] seconds.
fn open_loop(client: &Netns, generator: &Path, rate: f64) -> Result<Value> {
    let args = [
        format!("http://{VIP4}:80/"),
        rate.to_string(),
        SECS.to_string(),
        CONNS.to_string(),
    ];
    let limit = std::time::Duration::from_secs(u64::from(SECS) + 20);
    let (ok, out, err) = bounded(
        client,
        limit,
        generator.to_str().context("utf-8 path")?,
        &args,
    )?;
    if !ok {
        bail!("open_loop: {}", err.trim());
    }
    serde_json::from_str(out.trim()).with_context(|| format!("open_loop printed {out:?}"))
}

/// Runs the benchmark.
pub fn run(root: &Path, rounds: u32) -> Result<()> {
    shell::cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "balancer",
            "--bin",
            "balancer",
            "--example",
            "open_loop",
            "--example",
            "hyper_floor",
        ],
    )?;
    let bin = root.join("target/release/balancer");
    let generator = root.join("target/release/examples/open_loop");
    let env = Environment::probe(&bin);
    let started = Instant::now();
    let mut runs: Runs = Target::ALL.iter().map(|t| (*t, Vec::new())).collect();
    let configs: Vec<(&'static str, String)>;
    {
        let topo = Topology::new(3);
        prepare(&topo);
        let _backends = nginx::start_all(&topo, 80, false);
        for r in 1..=rounds {
            for (t, v) in &mut runs {
                eprintln!("bench: round {r}/{rounds}: {}", t.name());
                v.push(round(&topo, &bin, *t, r == 1)?);
            }
        }
        open_loop_phase(&topo, &bin, &generator, &mut runs)?;
        configs = Target::ALL
            .iter()
            .map(|t| t.config(topo.dir.path()))
            .collect();
    }
    write_page(root, &env, started, rounds, &runs, &configs)
}

/// Each target's runs.
type Runs = Vec<(Target, Vec<serde_json::Map<String, Value>>)>;

/// Latency under the same offered load for every target: 70% of the
/// highest keep-alive rate any of them reached. Adds the figures to every
/// run of each target.
fn open_loop_phase(topo: &Topology, bin: &Path, generator: &Path, runs: &mut Runs) -> Result<()> {
    let best = runs
        .iter()
        .map(|(_, v)| median_range(v, "keepalive_rps").0)
        .fold(0.0, f64::max);
    let rate = (best * 0.7).round();
    for (t, v) in runs {
        let proxy = start(topo, bin, *t)?;
        let measured = open_loop(&topo.client, generator, rate);
        let log = stop(&topo.lb, proxy);
        let m =
            measured.with_context(|| format!("{}: its log ends:\n{}", t.name(), log_tail(&log)))?;
        eprintln!("bench: {}: open loop at {rate} req/s: {m}", t.name());
        for run in v.iter_mut() {
            for key in ["p50_ms", "p99_ms", "sent", "due"] {
                run.insert(format!("open_{key}"), m[key].clone());
            }
            run.insert("open_rate".into(), json!(rate));
        }
    }
    Ok(())
}

/// Prints the table and writes `docs/bench/http.{md,json,png}`.
fn write_page(
    root: &Path,
    env: &Environment,
    started: Instant,
    rounds: u32,
    runs: &Runs,
    configs: &[(&'static str, String)],
) -> Result<()> {
    let keys = [
        ("keepalive_rps", "keep-alive req/s (wrk -c50)"),
        ("keepalive_p50_ms", "keep-alive p50 ms"),
        ("keepalive_p99_ms", "keep-alive p99 ms"),
        ("close_rps", "`Connection: close` req/s"),
        ("close_p99_ms", "`Connection: close` p99 ms"),
        ("h2_rps", "HTTP/2 req/s (h2load -c10 -m10)"),
        (
            "idle_kib_per_conn",
            "KiB per idle client connection (9,000 held)",
        ),
        (
            "open_rate",
            "open loop: offered req/s (70% of the best keep-alive rate)",
        ),
        ("open_p50_ms", "open loop: p50 ms"),
        ("open_p99_ms", "open loop: p99 ms"),
        ("open_sent", "open loop: requests answered"),
        ("open_due", "open loop: requests due"),
    ];
    let mut table = runs
        .iter()
        .fold(String::from("| figure |"), |mut s, (t, _)| {
            let _ = write!(s, " {} |", t.title());
            s
        });
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(runs.len()));
    table.push('\n');
    let mut figures = serde_json::Map::new();
    for (key, label) in keys {
        let mut row = format!("| {label} |");
        for (t, v) in runs {
            let (med, lo, hi) = median_range(v, key);
            let _ = write!(row, " {med:.2} [{lo:.2}-{hi:.2}] |");
            figures.insert(
                format!("{}.{key}", t.name()),
                json!({"median": med, "low": lo, "high": hi}),
            );
        }
        table.push_str(&row);
        table.push('\n');
    }
    let ratio = |key: &str, t: Target| {
        let med = |t: Target| {
            runs.iter()
                .find(|(x, _)| *x == t)
                .map_or(0.0, |(_, v)| median_range(v, key).0)
        };
        med(Target::Balancer) / med(t).max(f64::MIN_POSITIVE)
    };
    let mut ratios = String::new();
    for (key, label) in [
        ("keepalive_rps", "keep-alive req/s"),
        ("close_rps", "close req/s"),
        ("h2_rps", "HTTP/2 req/s"),
    ] {
        let best = ratio(key, Target::Haproxy).min(ratio(key, Target::Nginx));
        let _ = writeln!(
            ratios,
            "- {label}: balancer / better peer = {best:.2} (target 1.1)"
        );
    }
    print!("\n{table}\n{ratios}");
    let mut md = format!(
        "# HTTP benchmark: balancer vs HAProxy vs nginx\n\nGenerated by `cargo xtask bench http` ({} UTC, {} s). Everything above the analysis is rewritten on each run. Raw figures: [http.json](http.json).\n\n## Results\n\nMedian of {rounds} round(s), `[lowest-highest]`; idle memory once, on a fresh process. One machine, two CPUs shared by wrk/h2load, the three nginx backends and the proxy: read the ranges before the ratios.\n\n{table}\n![requests per second and memory per idle connection by target](http.png)\n\n{ratios}\n## Method\n\nThe namespace topology of the tests (client, balancer, three nginx backends answering a short text). Each target alone on {VIP4}:80, round robin over the same three backends, kept-alive upstream connections. wrk `-t2 -c{CONNS} -d{SECS}s --latency` (and `-H 'Connection: close'`); h2load `-c10 -m10 -t2 -D{SECS}` with HTTP/2 by prior knowledge (nginx serves it on port {NGINX_H2_PORT}, its cleartext HTTP/2 listener taking nothing else); idle memory: 9,000 client connections, each making one keep-alive request and then held, summed RSS of the namespace's processes before and after. The hyper floor (`balancer/examples/hyper_floor`) forwards each request untouched to the next backend over kept-alive HTTP/1.1 connections, on hyper-util's auto server as the balancer does, with the same allocator and build profile: nothing of routing, rewriting, limits, timeouts, retries or counters. Latency: `balancer/examples/open_loop` sends requests at a fixed rate over 50 kept-alive connections for {SECS} s, each timed from when it was due (no coordinated omission), at the same offered load for every target, 70% of the highest keep-alive rate measured.\n\n## Environment\n\n| what | version |\n|---|---|\n",
        env.date,
        started.elapsed().as_secs()
    );
    for (k, v) in env.rows() {
        let _ = writeln!(md, "| {k} | `{v}` |");
    }
    md.push_str("\n## Configs\n\n");
    for (file, text) in configs {
        let _ = write!(md, "`{file}`:\n\n```\n{text}```\n\n");
    }
    Page::new(root, "http")?.publish(root, &Value::Object(figures), &md)?;
    Ok(())
}
