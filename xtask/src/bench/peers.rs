//! The targets of the proxy benchmark and their lifecycle. Each proxy runs
//! alone in the balancer namespace on the same VIP and ports, over the same
//! backends, with the same selection (round robin): `web` (VIP:80 over the
//! three nginx backends) and `iperf` (VIP:5201 to the one iperf3 server).
//! The configs are plain text so the report can print exactly what ran.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use balancer_tests::{
    Netns, Process, Topology,
    topology::{VIP4, backend_addr},
};

/// The HTTP port: VIP:80 and every backend's nginx.
pub const HTTP_PORT: u16 = 80;
/// The iperf3 port: VIP:5201 and backend 1's iperf3 server.
pub const IPERF_PORT: u16 = 5201;
/// Backends behind the `web` pool.
pub const BACKENDS: usize = 3;
/// Per-proxy connection cap: room for the idle-connection test (each proxied
/// connection costs two descriptors; the hard open-files limit is 20,000).
pub const MAX_CONNECTIONS: u32 = 9_500;

/// One thing the client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// No proxy: kernel forwarding in the balancer namespace.
    Direct,
    /// This project, proxy mode, default engine (`auto`: splice).
    Balancer,
    /// This project, proxy mode, `proxy_engine: sockmap`.
    Sockmap,
    /// HAProxy, `mode tcp` with splice.
    Haproxy,
    /// nginx `stream`.
    Nginx,
}

impl Target {
    /// Every target in report order.
    pub const ALL: [Target; 5] = [
        Target::Direct,
        Target::Balancer,
        Target::Sockmap,
        Target::Haproxy,
        Target::Nginx,
    ];

    /// Short name (tables, JSON, file names).
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Balancer => "balancer",
            Target::Sockmap => "balancer-sockmap",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }

    /// One-line description.
    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "no proxy: kernel IPv4 forwarding in the balancer namespace",
            Target::Balancer => {
                "balancer, proxy mode, default engine (`auto`: splice), release build"
            }
            Target::Sockmap => {
                "balancer, proxy mode, `proxy_engine: sockmap` (in-kernel sk_skb relay), release build"
            }
            Target::Haproxy => "HAProxy, mode tcp, splice both ways, nbthread 2",
            Target::Nginx => "nginx stream module, 2 workers",
        }
    }

    /// Where the client sends HTTP for this target.
    pub fn http_addr(self) -> SocketAddr {
        match self {
            Target::Direct => backend_addr(0, HTTP_PORT, false),
            _ => SocketAddr::new(VIP4.into(), HTTP_PORT),
        }
    }

    /// Where the client sends iperf3 for this target.
    pub fn iperf_addr(self) -> SocketAddr {
        match self {
            Target::Direct => backend_addr(0, IPERF_PORT, false),
            _ => SocketAddr::new(VIP4.into(), IPERF_PORT),
        }
    }

    /// The config this target runs with and its file name, `None` for direct.
    pub fn config(self, scratch: &Path) -> Option<(&'static str, String)> {
        match self {
            Target::Direct => None,
            Target::Balancer => Some(("balancer.yaml", balancer_yaml(None))),
            Target::Sockmap => Some(("balancer-sockmap.yaml", balancer_yaml(Some("sockmap")))),
            Target::Haproxy => Some(("haproxy.cfg", haproxy_cfg())),
            Target::Nginx => Some(("nginx-stream.conf", nginx_stream_conf(scratch))),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn web_backends() -> Vec<SocketAddr> {
    (0..BACKENDS)
        .map(|i| backend_addr(i, HTTP_PORT, false))
        .collect()
}

fn iperf_backend() -> SocketAddr {
    backend_addr(0, IPERF_PORT, false)
}

/// The balancer's config; `engine`: a `proxy_engine` for both listeners.
fn balancer_yaml(engine: Option<&str>) -> String {
    let mut y = format!(
        "version: 1\nshutdown_grace: 1s\nlisteners:\n\
         \x20 - name: web\n    address: {VIP4}:{HTTP_PORT}\n    protocol: tcp\n    mode: proxy\n    pool: web\n    max_connections: {MAX_CONNECTIONS}\n\
         \x20 - name: iperf\n    address: {VIP4}:{IPERF_PORT}\n    protocol: tcp\n    mode: proxy\n    pool: iperf\n\
         pools:\n  - name: web\n    algorithm: round_robin\n    backends:\n"
    );
    for b in web_backends() {
        let _ = writeln!(y, "      - address: {b}");
    }
    let _ = write!(
        y,
        "  - name: iperf\n    algorithm: round_robin\n    backends:\n      - address: {}\n",
        iperf_backend()
    );
    match engine {
        Some(e) => y.replace(
            "    mode: proxy\n",
            &format!("    mode: proxy\n    proxy_engine: {e}\n"),
        ),
        None => y,
    }
}

fn haproxy_cfg() -> String {
    // Descriptors: 2 per connection plus 2 per pipe must fit the hard limit.
    let mut c = format!(
        "global\n    nbthread 2\n    maxconn {MAX_CONNECTIONS}\n    maxpipes 256\n    tune.pipesize 262144\n\n\
         defaults\n    mode tcp\n    maxconn {MAX_CONNECTIONS}\n    option splice-request\n    option splice-response\n\
         \x20   timeout connect 2s\n    timeout client 5m\n    timeout server 5m\n\n\
         frontend web\n    bind {VIP4}:{HTTP_PORT}\n    default_backend web\n\n\
         frontend iperf\n    bind {VIP4}:{IPERF_PORT}\n    default_backend iperf\n\n\
         backend web\n    balance roundrobin\n"
    );
    for (i, b) in web_backends().iter().enumerate() {
        let _ = writeln!(c, "    server b{} {b}", i + 1);
    }
    let _ = write!(c, "\nbackend iperf\n    server b1 {}\n", iperf_backend());
    c
}

fn nginx_stream_conf(scratch: &Path) -> String {
    let d = scratch.display();
    let servers = web_backends().iter().fold(String::new(), |mut s, b| {
        let _ = writeln!(s, "        server {b};");
        s
    });
    format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         user root;\nworker_processes 2;\nworker_rlimit_nofile 20000;\ndaemon off;\n\
         pid {d}/nginx-stream.pid;\nerror_log stderr warn;\n\n\
         # Each proxied connection is two nginx connections (client + upstream).\n\
         events {{ worker_connections 19000; }}\n\n\
         stream {{\n    upstream web {{\n{servers}    }}\n    upstream iperf {{\n        server {};\n    }}\n\
         \x20   server {{ listen {VIP4}:{HTTP_PORT} reuseport backlog=4096; proxy_pass web; }}\n\
         \x20   server {{ listen {VIP4}:{IPERF_PORT} reuseport; proxy_pass iperf; }}\n}}\n",
        iperf_backend()
    )
}

/// Starts `target` in the balancer namespace with the config it reports
/// and waits until both ports listen. `None` for direct.
pub fn start(topo: &Topology, bin: &Path, target: Target) -> Result<Option<Process>> {
    let Some((file, text)) = target.config(topo.dir.path()) else {
        return Ok(None);
    };
    let path = topo.path(file);
    let log = topo.path(&format!("{target}.log"));
    let p = match target {
        Target::Direct => return Ok(None),
        // The harness writes its own copy of the YAML and waits for both
        // listeners to log `listening`.
        Target::Balancer | Target::Sockmap => {
            return Ok(Some(topo.start_balancer_bin(bin, &text, 2)));
        }
        Target::Haproxy => {
            std::fs::write(&path, text)?;
            let mut cmd = topo.lb.command("haproxy");
            cmd.args(["-db", "-f"]).arg(&path);
            Process::spawn("haproxy", cmd, log)
        }
        Target::Nginx => {
            std::fs::write(&path, text)?;
            let mut cmd = topo.lb.command("nginx");
            cmd.args(["-e", "stderr", "-c"]).arg(&path);
            Process::spawn("nginx stream", cmd, log)
        }
    };
    wait_listening(&topo.lb, &[HTTP_PORT, IPERF_PORT], Duration::from_secs(10))
        .map_err(|e| e.context(format!("{target} did not start; its log:\n{}", p.output())))?;
    Ok(Some(p))
}

/// Stops a proxy: SIGTERM, a short grace, then SIGKILL for anything left in
/// the namespace (nginx workers outlive a killed master), and waits until
/// the namespace is empty so the next proxy can bind the VIP.
pub fn stop(lb: &Netns, mut p: Process) -> String {
    p.signal(libc::SIGTERM);
    let _ = p.wait_timeout(Duration::from_secs(5));
    let log = p.output();
    drop(p);
    lb.kill_all();
    log
}

/// The last 20 lines of a stopped proxy's log, for an error that names
/// why it failed.
pub fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Waits until something listens on every TCP port in `ns`, without
/// connecting (a bare connection would reach the iperf3 server as a
/// malformed test).
pub fn wait_listening(ns: &Netns, ports: &[u16], timeout: Duration) -> Result<()> {
    wait_bound(ns, ports, "-Hltn", timeout)
}

/// Waits until every UDP port in `ns` is bound.
pub fn wait_udp(ns: &Netns, ports: &[u16], timeout: Duration) -> Result<()> {
    wait_bound(ns, ports, "-Hlun", timeout)
}

/// Waits until `ss FLAGS` in `ns` lists every port as a local one.
fn wait_bound(ns: &Netns, ports: &[u16], flags: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = ns.run("ss", &[flags]);
        let missing: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| {
                !out.lines().any(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .is_some_and(|a| a.ends_with(&format!(":{p}")))
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "nothing listens on ports {missing:?} in {} after {timeout:?}",
                ns.name()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
