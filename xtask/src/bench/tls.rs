//! `cargo xtask bench tls`: TLS termination against HAProxy 2.6 and nginx
//! (both on OpenSSL 3.0), each alone on the same VIP in front of the same
//! three nginx backends, in interleaved rounds, on the same certificates
//! (ECDSA P-256 on port 443, RSA 2048 on port 8443, signed by a CA made
//! for the run) and the same suite preference (AES-128-GCM with SHA-256
//! first, chosen by the server). Per target: full handshakes per second
//! with one request per connection, TLS 1.3 and 1.2 with each key;
//! resumed handshakes per second (`balancer/examples/tls_load`); HTTPS
//! keep-alive requests per second (wrk); bulk HTTPS throughput (wrk,
//! 4 connections fetching 8 MiB). Before the rounds, the server's cost of
//! one handshake with each rustls provider, in memory
//! (`balancer/examples/tls_providers`). Writes `docs/bench/tls.{md,json,png}`.

use std::{fmt::Write as _, net::SocketAddr, path::Path, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};
use balancer_tests::{
    Netns, Process, Topology,
    certs::{Ca, Pair},
    nginx,
    topology::{VIP4, backend_addr, random_file},
};
use serde_json::{Value, json};

use super::{
    Run,
    env::Environment,
    load::{bounded, parse_wrk},
    peers::{log_tail, stop, wait_listening},
    proxy::prepare,
};
use crate::shell;

/// Seconds each load runs.
const SECS: u32 = 6;
/// Concurrent handshakes the generator keeps going.
const HANDSHAKERS: u32 = 16;
/// wrk connections for keep-alive requests.
const KEEPALIVE_CONNS: u32 = 50;
/// wrk connections for bulk transfers.
const BULK_CONNS: u32 = 4;
/// The bulk file's size.
const BULK_BYTES: u64 = 8 << 20;
const ECDSA_PORT: u16 = 443;
const RSA_PORT: u16 = 8443;
const PROXY_CAP: u32 = 9_500;
/// TLS 1.3 suites, AES-128-GCM first, for the OpenSSL peers.
const SUITES13: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/// TLS 1.2 ciphers in the same spirit.
const CIPHERS12: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// The handshakes measured: (figure, port, TLS version, mode).
const HANDSHAKES: [(&str, u16, &str, &str); 6] = [
    ("full13_ecdsa", ECDSA_PORT, "1.3", "full"),
    ("full12_ecdsa", ECDSA_PORT, "1.2", "full"),
    ("full13_rsa", RSA_PORT, "1.3", "full"),
    ("full12_rsa", RSA_PORT, "1.2", "full"),
    ("resumed13_ecdsa", ECDSA_PORT, "1.3", "resumed"),
    ("resumed12_ecdsa", ECDSA_PORT, "1.2", "resumed"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Balancer,
    Haproxy,
    Nginx,
}

impl Target {
    const ALL: [Target; 3] = [Target::Balancer, Target::Haproxy, Target::Nginx];

    fn name(self) -> &'static str {
        match self {
            Target::Balancer => "balancer",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Target::Balancer => "balancer",
            Target::Haproxy => "HAProxy",
            Target::Nginx => "nginx",
        }
    }

    /// Its config file's name and text, on the certificates in `certs`.
    fn config(self, scratch: &Path, certs: &Certs) -> (&'static str, String) {
        let backends: Vec<SocketAddr> = (0..3).map(|i| backend_addr(i, 80, false)).collect();
        let (ec, rsa) = (&certs.ecdsa, &certs.rsa);
        match self {
            Target::Balancer => {
                let mut y = String::from("version: 1\nshutdown_grace: 1s\nlisteners:\n");
                for (name, port, pair) in
                    [("tls-ecdsa", ECDSA_PORT, ec), ("tls-rsa", RSA_PORT, rsa)]
                {
                    let _ = write!(
                        y,
                        "  - name: {name}\n    address: {VIP4}:{port}\n    protocol: tcp\n    mode: http\n    pool: web\n    max_connections: {PROXY_CAP}\n    http: {{ keepalive_timeout: 5m }}\n    tls:\n      certificates: [{{ cert: {}, key: {} }}]\n",
                        pair.cert.display(),
                        pair.key.display()
                    );
                }
                y.push_str("pools:\n  - name: web\n    algorithm: round_robin\n    keepalive: { max_idle: 64 }\n    backends:\n");
                for b in &backends {
                    let _ = writeln!(y, "      - address: {b}");
                }
                ("balancer-tls.yaml", y)
            }
            Target::Haproxy => {
                let mut c = format!(
                    "global\n    nbthread 2\n    maxconn {PROXY_CAP}\n    ssl-default-bind-options ssl-min-ver TLSv1.2\n    ssl-default-bind-ciphersuites {SUITES13}\n    ssl-default-bind-ciphers {CIPHERS12}\n\ndefaults\n    mode http\n    maxconn {PROXY_CAP}\n    http-reuse always\n    option http-keep-alive\n    timeout connect 2s\n    timeout client 5m\n    timeout server 5m\n    timeout http-keep-alive 5m\n\nfrontend tls\n    bind {VIP4}:{ECDSA_PORT} ssl crt {} alpn h2,http/1.1\n    bind {VIP4}:{RSA_PORT} ssl crt {} alpn h2,http/1.1\n    default_backend web\n\nbackend web\n    balance roundrobin\n",
                    certs.ecdsa_bundle.display(),
                    certs.rsa_bundle.display()
                );
                for (i, b) in backends.iter().enumerate() {
                    let _ = writeln!(c, "    server b{} {b}", i + 1);
                }
                ("haproxy-tls.cfg", c)
            }
            Target::Nginx => {
                let d = scratch.display();
                let servers = backends.iter().fold(String::new(), |mut s, b| {
                    let _ = writeln!(s, "        server {b};");
                    s
                });
                let server = |port: u16, pair: &Pair| {
                    format!(
                        "    server {{\n        listen {VIP4}:{port} ssl http2 reuseport backlog=4096;\n        ssl_certificate {};\n        ssl_certificate_key {};\n        location / {{ proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n    }}\n",
                        pair.cert.display(),
                        pair.key.display()
                    )
                };
                let conf = format!(
                    "user root;\nworker_processes 2;\nworker_rlimit_nofile 20000;\ndaemon off;\npid {d}/nginx-tls.pid;\nerror_log stderr warn;\nevents {{ worker_connections 19000; }}\nhttp {{\n    access_log off;\n    keepalive_timeout 5m;\n    keepalive_requests 1000000;\n    client_body_temp_path {d}/nb;\n    proxy_temp_path {d}/np;\n    fastcgi_temp_path {d}/nf;\n    uwsgi_temp_path {d}/nu;\n    scgi_temp_path {d}/ns;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_prefer_server_ciphers on;\n    ssl_ciphers {CIPHERS12};\n    ssl_conf_command Ciphersuites {SUITES13};\n    ssl_session_cache shared:SSL:20m;\n    ssl_session_tickets on;\n    upstream web {{\n{servers}        keepalive 64;\n    }}\n{}{}}}\n",
                    server(ECDSA_PORT, ec),
                    server(RSA_PORT, rsa)
                );
                ("nginx-tls.conf", conf)
            }
        }
    }
}

/// The run's certificates: PEM pairs, and for HAProxy each chain and key
/// in one file.
struct Certs {
    ecdsa: Pair,
    rsa: Pair,
    ecdsa_bundle: std::path::PathBuf,
    rsa_bundle: std::path::PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Result<Self> {
        let ca = Ca::new(&dir.join("tls-bench-ca"));
        let ecdsa = ca.server("bench-ecdsa", &["bench.test"]);
        let rsa = ca.server_rsa("bench-rsa", &["bench.test"]);
        let bundle = |p: &Pair, name: &str| -> Result<std::path::PathBuf> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&p.cert)? + &std::fs::read_to_string(&p.key)?;
            std::fs::write(&path, text)?;
            Ok(path)
        };
        Ok(Self {
            ecdsa_bundle: bundle(&ecdsa, "bench-ecdsa.bundle.pem")?,
            rsa_bundle: bundle(&rsa, "bench-rsa.bundle.pem")?,
            ecdsa,
            rsa,
        })
    }
}

/// What one round measured for one target.
fn round(topo: &Topology, bins: &Bins, certs: &Certs, target: Target) -> Result<Run> {
    let proxy = start(topo, &bins.balancer, certs, target)?;
    let result = (|| -> Result<Run> {
        let mut m = Run::new();
        for (key, port, version, mode) in HANDSHAKES {
            let h = tls_load(&topo.client, &bins.load, port, version, mode)?;
            eprintln!(
                "bench: {}: {key}: {:.0}/s ({} errors, {} resumed of {})",
                target.name(),
                h.rate,
                h.errors,
                h.resumed,
                h.completed
            );
            m.insert(key.into(), json!(h.rate));
            m.insert(format!("{key}_errors"), json!(h.errors));
        }
        let url = format!("https://{VIP4}:{ECDSA_PORT}/");
        let keep = wrk(&topo.client, &url, KEEPALIVE_CONNS)?;
        m.insert("keepalive_rps".into(), json!(keep.rate));
        m.insert("keepalive_p99_ms".into(), json!(keep.p99_ms));
        m.insert("keepalive_errors".into(), json!(keep.errors + keep.non_2xx));
        let bulk = wrk(&topo.client, &format!("{url}files/bulk.bin"), BULK_CONNS)?;
        let mbps = bulk.rate * super::float(BULK_BYTES) * 8.0 / 1e6;
        m.insert("bulk_mbps".into(), json!(mbps));
        m.insert("bulk_errors".into(), json!(bulk.errors + bulk.non_2xx));
        eprintln!(
            "bench: {}: keep-alive {:.0} req/s, bulk {mbps:.0} Mbit/s",
            target.name(),
            keep.rate
        );
        Ok(m)
    })();
    let log = stop(&topo.lb, proxy);
    result.with_context(|| format!("{}: its log ends:\n{}", target.name(), log_tail(&log)))
}

fn start(topo: &Topology, bin: &Path, certs: &Certs, target: Target) -> Result<Process> {
    let (file, text) = target.config(topo.dir.path(), certs);
    if target == Target::Balancer {
        return Ok(topo.start_balancer_bin(bin, &text, 2));
    }
    let path = topo.path(file);
    std::fs::write(&path, &text)?;
    let p = if target == Target::Haproxy {
        let mut cmd = topo.lb.command("haproxy");
        cmd.args(["-db", "-f"]).arg(&path);
        Process::spawn("haproxy", cmd, topo.path("haproxy-tls.log"))
    } else {
        let mut cmd = topo.lb.command("nginx");
        cmd.args(["-e", "stderr", "-c"]).arg(&path);
        Process::spawn("nginx tls", cmd, topo.path("nginx-tls.log"))
    };
    wait_listening(
        &topo.lb,
        &[ECDSA_PORT, RSA_PORT],
        std::time::Duration::from_secs(10),
    )?;
    Ok(p)
}

/// One handshake load's figures, as `tls_load` printed them.
struct Handshakes {
    completed: u64,
    resumed: u64,
    errors: u64,
    rate: f64,
}

fn tls_load(
    client: &Netns,
    bin: &Path,
    port: u16,
    version: &str,
    mode: &str,
) -> Result<Handshakes> {
    let args = [
        format!("{VIP4}:{port}"),
        "bench.test".to_owned(),
        version.to_owned(),
        mode.to_owned(),
        SECS.to_string(),
        HANDSHAKERS.to_string(),
    ];
    let limit = std::time::Duration::from_secs(u64::from(SECS) + 15);
    let (ok, out, err) = bounded(client, limit, bin.to_str().context("utf-8 path")?, &args)?;
    if !ok {
        bail!("tls_load {}: {}", args.join(" "), err.trim());
    }
    let v: Value =
        serde_json::from_str(out.trim()).with_context(|| format!("tls_load printed {out:?}"))?;
    let count = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("tls_load: no `{k}` in {v}"))
    };
    Ok(Handshakes {
        completed: count("handshakes")?,
        resumed: count("resumed")?,
        errors: count("errors")?,
        rate: v["rate"].as_f64().context("tls_load: no `rate`")?,
    })
}

fn wrk(client: &Netns, url: &str, conns: u32) -> Result<super::load::Wrk> {
    let args = vec![
        "-t2".to_owned(),
        format!("-c{conns}"),
        format!("-d{SECS}s"),
        "--timeout".into(),
        "4s".into(),
        "--latency".into(),
        url.to_owned(),
    ];
    let limit = std::time::Duration::from_secs(u64::from(SECS) + 15);
    let (ok, out, err) = bounded(client, limit, "wrk", &args)?;
    if !ok {
        bail!("wrk {url}: {}", err.trim());
    }
    parse_wrk(&out)
}

/// The binaries the benchmark runs.
struct Bins {
    balancer: std::path::PathBuf,
    load: std::path::PathBuf,
    providers: std::path::PathBuf,
}

/// Each target's runs.
type Runs = Vec<(Target, Vec<Run>)>;

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
            "tls_load",
            "--example",
            "tls_providers",
        ],
    )?;
    let release = root.join("target/release");
    let bins = Bins {
        balancer: release.join("balancer"),
        load: release.join("examples/tls_load"),
        providers: release.join("examples/tls_providers"),
    };
    let env = Environment::probe(&bins.balancer);
    let started = Instant::now();
    let providers = providers(&bins.providers)?;
    let mut runs: Runs = Target::ALL.iter().map(|t| (*t, Vec::new())).collect();
    let configs: Vec<(&'static str, String)>;
    {
        let topo = Topology::new(3);
        prepare(&topo);
        let _backends = nginx::start_all(&topo, 80, false);
        let _bulk = random_file(topo.dir.path(), "bulk.bin", BULK_BYTES);
        let certs = Certs::make(topo.dir.path())?;
        for r in 1..=rounds {
            for (t, v) in &mut runs {
                eprintln!("bench: round {r}/{rounds}: {}", t.name());
                v.push(round(&topo, &bins, &certs, *t)?);
            }
        }
        configs = Target::ALL
            .iter()
            .map(|t| t.config(topo.dir.path(), &certs))
            .collect();
    }
    super::tls_page::write(
        root,
        &super::tls_page::Results {
            env: &env,
            started,
            rounds,
            runs: &runs
                .iter()
                .map(|(t, v)| (t.name(), t.title(), v.clone()))
                .collect::<Vec<_>>(),
            providers: &providers,
            configs: &configs,
        },
    )
}

/// The server's microseconds per handshake by provider, key and version,
/// in memory, over 1,000 handshakes each.
fn providers(bin: &Path) -> Result<serde_json::Map<String, Value>> {
    let out = Command::new(bin)
        .arg("1000")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!("tls_providers: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("tls_providers output")?;
    eprintln!("bench: providers (server µs per handshake): {v}");
    v.as_object()
        .cloned()
        .context("tls_providers printed no object")
}

/// The figures of the rounds, in the order the page shows them.
pub(super) const FIGURES: [(&str, &str); 10] = [
    ("full13_ecdsa", "full handshakes/s, TLS 1.3, ECDSA P-256"),
    ("full12_ecdsa", "full handshakes/s, TLS 1.2, ECDSA P-256"),
    ("full13_rsa", "full handshakes/s, TLS 1.3, RSA 2048"),
    ("full12_rsa", "full handshakes/s, TLS 1.2, RSA 2048"),
    ("resumed13_ecdsa", "resumed handshakes/s, TLS 1.3, ECDSA"),
    ("resumed12_ecdsa", "resumed handshakes/s, TLS 1.2, ECDSA"),
    ("keepalive_rps", "HTTPS keep-alive req/s (wrk -c50)"),
    ("keepalive_p99_ms", "HTTPS keep-alive p99 ms"),
    ("bulk_mbps", "bulk HTTPS Mbit/s (wrk -c4, 8 MiB)"),
    ("bulk_errors", "bulk: errors"),
];

/// The method paragraph of the page.
pub(super) fn method() -> String {
    format!(
        "The namespace topology of the tests (client, balancer, three nginx backends answering a short text on `/` and serving an {} MiB file). Each target alone on {VIP4}, ECDSA P-256 on port {ECDSA_PORT} and RSA 2048 on port {RSA_PORT} (one test CA), TLS 1.2 and 1.3, AES-128-GCM with SHA-256 preferred by every server (HAProxy `ssl-default-bind-ciphersuites`, nginx `ssl_conf_command Ciphersuites`, balancer's own order), session caches and tickets on, round robin over kept-alive backend connections; HAProxy `nbthread 2`, nginx 2 workers, balancer its 2 runtime threads. Handshakes: `balancer/examples/tls_load` keeps {HANDSHAKERS} connections going on one client thread, each a TCP connect, a handshake, `GET /` with `Connection: close` and the answer read to its end, for {SECS} s; its client offers X25519 (and P-256, which OpenSSL wants named for an ECDSA certificate over TLS 1.2), checks neither certificate nor signature (so the two cores go to the server), and resumes each worker's previous session in `resumed` runs. Keep-alive: wrk `-t2 -c{KEEPALIVE_CONNS} -d{SECS}s` on `/`; bulk: wrk `-t2 -c{BULK_CONNS} -d{SECS}s` on the file. Providers: `balancer/examples/tls_providers` times only the server's calls of 1,000 handshakes in memory (no sockets), with aws-lc-rs and ring each in its default suite order, and balancer's provider (aws-lc-rs, AES-128-GCM/SHA-256 first), against the same aws-lc-rs client.",
        BULK_BYTES >> 20
    )
}
