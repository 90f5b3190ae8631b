//! `balancer run --upgrade` in namespaces, every plane at once: an XDP VIP
//! (DSR), a TCP proxy listener, an HTTP listener and a TCP proxy carrying
//! one long iperf3 stream, with the admin API on a fixed port. Rounds of
//! upgrades run while wrk (keep-alive and `Connection: close`), iperf3 and
//! steady keep-alive plus new connections through the VIP load all of
//! them: no request fails, no connection is refused, the iperf3 stream
//! survives every upgrade on the daemon that accepted it, each upgrade
//! swaps a new XDP program into the pinned link, and each old daemon exits
//! within `shutdown_grace`. An upgrade with an invalid config is refused
//! and the running daemon serves on. Long-lived connections finish on the
//! old daemon: a WebSocket tunnel carries on, and an HTTP/2 connection is
//! told to go with a GOAWAY.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology,
    bpffs::BpfFs,
    client::http_get,
    l2::{L2, VIP, backend},
    nginx, scripts,
    steady::{Tally, program_id, traffic},
    upgrade_balancer,
};

/// Upgrade rounds.
const ROUNDS: usize = 20;
/// Seconds the load runs; the rounds must fit in it.
const LOAD_S: u64 = 90;
/// The old daemon holding the iperf3 stream keeps it until the stream
/// ends, so the grace outlasts the load.
const GRACE_S: u64 = 110;
/// The balancer's own address.
const LB: &str = "198.18.0.2";

fn config(pin_dir: &std::path::Path) -> String {
    let (b0, b1) = (backend(0), backend(1));
    format!(
        "version: 1
shutdown_grace: {GRACE_S}s
admin: {{ listen: \"127.0.0.1:9100\" }}
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: vip }}
  - {{ name: tcp, address: \"{LB}:8080\", protocol: tcp, mode: proxy, pool: web }}
  - {{ name: web, address: \"{LB}:8081\", protocol: tcp, mode: http, pool: web }}
  - {{ name: bulk, address: \"{LB}:5201\", protocol: tcp, mode: proxy, pool: bulk }}
pools:
  - name: vip
    algorithm: maglev
    backends: [{{ address: \"{b0}:80\" }}, {{ address: \"{b1}:80\" }}]
  - name: web
    backends: [{{ address: \"{b0}:8080\" }}, {{ address: \"{b1}:8080\" }}]
  - name: bulk
    backends: [{{ address: \"{b0}:5201\" }}]
xdp: {{ interface: eth0, forwarding: dsr, pin_dir: \"{}\" }}
",
        pin_dir.display()
    )
}

/// Sets its flag when dropped, also by a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What wrk reported.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    socket_errors: u64,
    non_2xx: u64,
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            w.requests = n.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            w.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = n.trim().parse().unwrap_or(u64::MAX);
        }
    }
    w
}

fn wrk(t: &L2, name: &str, url: &str, connections: u32, close: bool) -> Process {
    let mut cmd = t.client.command("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{LOAD_S}s"),
        "--timeout",
        "5s",
    ]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(url);
    Process::spawn(name, cmd, t.dir.path().join(format!("{name}.log")))
}

/// nginx on both backends (the VIP for the XDP listener, their own
/// address for the proxies) and an iperf3 server for one test on the
/// first.
fn start_backends(t: &L2) -> Vec<Process> {
    let mut started: Vec<Process> = t
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let on_lb: SocketAddr = (backend(i), 8080).into();
            nginx::start(
                b,
                t.dir.path(),
                &format!("backend-{}", i + 1),
                &[L2::vip(80), on_lb],
            )
        })
        .collect();
    let mut server = t.backends[0].command("iperf3");
    server.args(["-s", "-1", "-B", &backend(0).to_string(), "-p", "5201"]);
    started.push(Process::spawn(
        "iperf3 -s",
        server,
        t.dir.path().join("iperf3-s.log"),
    ));
    started
}

/// The clients, each bounded by [`LOAD_S`]: iperf3 through the bulk
/// listener, wrk keep-alive on the HTTP listener, wrk with `Connection:
/// close` through the TCP proxy.
fn start_load(t: &L2) -> [Process; 3] {
    let mut iperf = t.client.command("iperf3");
    iperf.args([
        "-c",
        LB,
        "-p",
        "5201",
        "-t",
        &LOAD_S.to_string(),
        "-b",
        "200M",
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    [
        Process::spawn("iperf3 -c", iperf, t.dir.path().join("iperf3-c.log")),
        wrk(t, "wrk-keepalive", &format!("http://{LB}:8081/"), 16, false),
        wrk(t, "wrk-close", &format!("http://{LB}:8080/"), 8, true),
    ]
}

/// Nothing failed: the XDP traffic in `tally`, both wrk runs, and the
/// iperf3 stream, which must have ended cleanly with its bytes.
fn check_load(tally: &Tally, iperf: &Process, keep_alive: &Process, close: &Process) {
    let (kept_ok, kept_failed, new_ok, new_failed) = tally.counts();
    let kept = parse_wrk(&keep_alive.output());
    let closing = parse_wrk(&close.output());
    let json: serde_json::Value = serde_json::from_str(&iperf.output())
        .unwrap_or_else(|e| panic!("iperf3 said {}: {e}", iperf.output()));
    let bytes = json["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "{ROUNDS} upgrades: wrk keep-alive {kept:?}; wrk close {closing:?}; iperf3 {bytes} bytes, error {:?}; XDP keep-alive {kept_ok} ok {kept_failed} failed, new {new_ok} ok {new_failed} failed",
        json.get("error")
    );
    assert!(json.get("error").is_none(), "iperf3: {json}");
    assert!(bytes > 100_000_000, "iperf3 moved only {bytes} bytes");
    for (name, w) in [("keep-alive", &kept), ("close", &closing)] {
        assert!(w.requests > 1000, "wrk {name}: {w:?}");
        assert_eq!((w.socket_errors, w.non_2xx), (0, 0), "wrk {name}: {w:?}");
    }
    assert_eq!((kept_failed, new_failed), (0, 0), "XDP traffic failed");
    assert!(kept_ok > 1000 && new_ok > 100, "{kept_ok} / {new_ok}");
}

#[test]
fn upgrades_under_wrk_iperf3_and_xdp_traffic_fail_nothing() {
    let t = L2::new(2);
    let fs = BpfFs::new();
    let _backends = start_backends(&t);
    let yaml = config(&fs.path().join("lb"));
    // Four listeners and the admin API.
    let first = t.start_balancer(&yaml, 5);
    let mut ids = vec![program_id(&first.output()).expect("the first start logs its program id")];

    let [mut iperf, mut keep_alive, mut close] = start_load(&t);
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let began = Instant::now();
    // Every daemon, with when it handed over (None: still serving).
    let mut daemons: Vec<(Process, Option<Instant>)> = vec![(first, None)];
    let vip = L2::vip(80);
    std::thread::scope(|s| {
        let steady = s.spawn(|| t.client.enter(|| traffic(vip, 20, 20, &stop, &tally)));
        // A failing round must end the traffic, or the scope waits for it.
        let _stop = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(2));
        for round in 0..ROUNDS {
            let new = upgrade_balancer(&t.lb, t.dir.path(), &format!("balancer-{round}.log"));
            let handed = Instant::now();
            if let Some(last) = daemons.last_mut() {
                last.1 = Some(handed);
            }
            let log = new.output();
            assert!(
                log.contains("upgraded from pid")
                    && log.contains("replaced the running XDP program in its pinned link"),
                "round {round}: {log}"
            );
            let id =
                program_id(&log).unwrap_or_else(|| panic!("round {round}: no program id in {log}"));
            assert!(!ids.contains(&id), "round {round}: program {id} again");
            ids.push(id);
            daemons.push((new, None));
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                began.elapsed() < Duration::from_secs(LOAD_S - 3),
                "round {round}: the upgrades outlasted the load"
            );
        }
        // The bound on the load's duration ends the clients by themselves.
        for (name, p) in [
            ("wrk keep-alive", &mut keep_alive),
            ("wrk close", &mut close),
            ("iperf3", &mut iperf),
        ] {
            assert!(
                p.wait_timeout(Duration::from_secs(LOAD_S + 30)).is_some(),
                "{name} did not finish"
            );
        }
        stop.store(true, Ordering::Relaxed);
        assert!(steady.join().is_ok(), "the VIP traffic panicked");
    });

    // Each old daemon exits within the grace of its handover.
    let grace = Duration::from_secs(GRACE_S);
    let last = daemons.len() - 1;
    for (i, (old, handed)) in daemons.iter_mut().enumerate().take(last) {
        let handed = handed.expect("every old daemon handed over");
        let left = grace.saturating_sub(handed.elapsed()) + Duration::from_secs(2);
        assert!(
            old.wait_timeout(left).is_some(),
            "daemon {i} still runs {:?} after its handover:\n{}",
            handed.elapsed(),
            old.output()
        );
    }

    check_load(&tally, &iperf, &keep_alive, &close);
    // An invalid config refuses the upgrade; the running daemon serves on.
    let bad = t.dir.path().join("bad.yaml");
    std::fs::write(&bad, yaml.replace("pool: web }", "pool: nowhere }")).expect("write");
    let out =
        t.lb.command(balancer_tests::balancer_bin().to_str().expect("utf-8"))
            .args(["run", "--upgrade", "-c"])
            .arg(&bad)
            .output()
            .expect("run the refused upgrade");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("nowhere"), "{said}");
    let web: SocketAddr = (LB.parse::<std::net::IpAddr>().expect("ip"), 8081).into();
    assert!(
        t.client.enter(|| http_get(web, None)).is_ok(),
        "the running daemon stopped serving"
    );
    let running = &mut daemons[last].0;
    assert!(
        running.wait_timeout(Duration::ZERO).is_none(),
        "{}",
        running.output()
    );
}

/// A WebSocket tunnel opened before an upgrade carries on through the old
/// daemon, which exits once it ends; a held HTTP/2 connection gets a
/// GOAWAY (`NO_ERROR`), and its client's next connection is served by the
/// new daemon.
#[test]
fn a_websocket_finishes_on_the_old_daemon_and_http2_gets_a_goaway() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _server = scripts::ws_echo_server(&t.backends[0], t.dir.path());
    let yaml = &balancer_tests::config::http_with_websocket("", "30s");
    let mut old = t.start_balancer(yaml, 1);
    let ws = scripts::command(&t.client, "ws_hold.py", &["ws://198.18.0.10/ws", "5"]);
    let mut ws = Process::spawn("ws client", ws, t.path("ws-client.log"));
    let h2 = scripts::command(&t.client, "h2_goaway.py", &["198.18.0.10", "80", "20"]);
    let mut h2 = Process::spawn("h2 client", h2, t.path("h2-client.log"));
    h2.wait_for("ready", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));

    let _new = upgrade_balancer(&t.lb, t.dir.path(), "balancer-new.log");
    let handed = Instant::now();
    for (name, p) in [("http/2", &mut h2), ("websocket", &mut ws)] {
        let status = p.wait_timeout(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "{name} client: {}",
            p.output()
        );
    }
    assert_eq!(
        h2.output().lines().last(),
        Some("goaway 0 backend-1 backend-1"),
        "the HTTP/2 client"
    );
    assert_eq!(ws.output().trim(), "one two", "the tunnel carried on");
    // The old daemon waited for the tunnel, then went.
    let status = old.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "the old daemon still runs: {}",
        old.output()
    );
    assert!(
        handed.elapsed() >= Duration::from_secs(3),
        "the old daemon left before the tunnel ended"
    );
}
