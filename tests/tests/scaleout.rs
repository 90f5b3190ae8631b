//! Scale-out with real BIRD 2 routers (see [`balancer_tests::fabric`]):
//! three balancer hosts announce the same VIPs to a router that spreads
//! flows over them by ECMP; every host builds the same Maglev ring, so a
//! flow reaches the same backend whichever host carries it, and a host
//! leaves the router's route when withdrawn by the operator, when its pool
//! fails, when its BIRD stops or when its link is cut (BFD), but not when
//! only its daemon dies (the XDP program outlives it).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{
    client::{KeepAlive, http_get, http_get_from, tally},
    fabric::{CLIENT, CLIENT6, Fabric, backend, backend6},
};

const HOSTS: usize = 3;
const BACKENDS: usize = 3;
/// Flows of the spread check, per address family.
const FLOWS: u16 = 300;
/// Kept connections moved by a withdrawal.
const KEPT: usize = 50;

/// The hosts' config: both VIPs through the XDP program (DSR), checks every
/// 200 ms, announcements on `vip0`.
fn xdp_config() -> String {
    let pool = |name: &str, v6: bool| {
        let list: Vec<String> = (0..BACKENDS)
            .map(|i| {
                if v6 {
                    format!("{{ address: \"[{}]:80\" }}", backend6(i))
                } else {
                    format!("{{ address: \"{}:80\" }}", backend(i))
                }
            })
            .collect();
        format!(
            "  - name: {name}\n    algorithm: maglev\n    health: {{ kind: tcp, interval: 200ms, timeout: 200ms, jitter: 1ms, rise: 2, fall: 2, passive: false }}\n    backends: [{}]\n",
            list.join(", ")
        )
    };
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{}\", protocol: tcp, mode: xdp, pool: web }}
  - {{ name: vip6, address: \"{}\", protocol: tcp, mode: xdp, pool: web6 }}
pools:
{}{}xdp: {{ interface: eth0, forwarding: dsr, pin_dir: \"PIN_DIR\" }}
announce: {{ interface: vip0, min_healthy: 1 }}
",
        Fabric::vip(false),
        Fabric::vip(true),
        pool("web", false),
        pool("web6", true)
    )
}

/// Hosts running `yaml` (with `listeners` listeners) and BIRD, the router's
/// BIRD, and every VIP routed over all hosts.
fn fabric(yaml: &str, listeners: usize) -> Fabric {
    let mut f = Fabric::new(HOSTS, BACKENDS);
    for i in 0..HOSTS {
        f.start_balancer(i, yaml, listeners);
    }
    f.start_router_bird();
    for i in 0..HOSTS {
        f.start_host_bird(i);
    }
    let all: Vec<usize> = (0..HOSTS).collect();
    for v6 in [false, true] {
        let took = f.until_next_hops(Fabric::vip(v6).ip(), &all, Duration::from_secs(40));
        eprintln!(
            "{}: routed over {HOSTS} hosts after {took:?}",
            Fabric::vip(v6)
        );
    }
    f
}

/// One GET per flow from the client's `port` (`FLOWS` ports from `first`),
/// each on a new connection; the backend that answered each.
fn flows(f: &Fabric, v6: bool, first: u16) -> Vec<String> {
    let vip = Fabric::vip(v6);
    let client: IpAddr = if v6 { CLIENT6.into() } else { CLIENT.into() };
    f.client.enter(|| {
        (first..first + FLOWS)
            .map(|port| {
                http_get_from(vip, SocketAddr::new(client, port))
                    .unwrap_or_else(|e| panic!("{vip} from port {port}: {e}"))
            })
            .collect()
    })
}

/// Each host's `forward_dsr` counter.
fn forwarded(f: &Fabric) -> Vec<u64> {
    (0..HOSTS).map(|i| f.forwarded(i)).collect()
}

/// The backend `balancer explain` on host `i` gives for the flow from the
/// client's `port`.
fn explained(f: &Fabric, i: usize, v6: bool, port: u16) -> String {
    let vip = Fabric::vip(v6);
    let client: IpAddr = if v6 { CLIENT6.into() } else { CLIENT.into() };
    let source = SocketAddr::new(client, port).to_string();
    let out = f.balancer(i, &["explain", "tcp", &source, &vip.to_string()]);
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("XDP program"))
        .unwrap_or_else(|| panic!("no XDP line in {out}"));
    let address: SocketAddr = line
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no backend in {line}"));
    let n = (0..BACKENDS)
        .find(|&b| {
            address.ip() == IpAddr::from(backend(b)) || address.ip() == IpAddr::from(backend6(b))
        })
        .unwrap_or_else(|| panic!("{address} is no backend"));
    format!("backend-{}", n + 1)
}

#[test]
fn ecmp_spreads_flows_over_the_hosts_and_each_flow_keeps_its_backend_on_any_host() {
    let f = fabric(&xdp_config(), 2);
    // An XDP VIP is held on vip0 for BIRD, but the host's own stack never
    // answers for it: no local route.
    for i in 0..HOSTS {
        let ns = &f.hosts[i].ns;
        let held = ns.run("ip", &["addr", "show", "dev", "vip0"]);
        assert!(
            held.contains(&format!("{}/32", balancer_tests::fabric::VIP))
                && held.contains(&format!("{}/128", balancer_tests::fabric::VIP6)),
            "host {i}: {held}"
        );
        for family in ["-4", "-6"] {
            let local = ns.run("ip", &[family, "route", "show", "table", "local"]);
            assert!(
                !local.contains("198.18.100.10") && !local.contains("fd00:100::10"),
                "host {i} would answer for an XDP VIP itself: {local}"
            );
        }
    }
    let mut first = BTreeMap::new();
    for (v6, port) in [(false, 41_000), (true, 42_000)] {
        let before = forwarded(&f);
        let names = flows(&f, v6, port);
        let after = forwarded(&f);
        let per_host: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: u64 = per_host.iter().sum();
        eprintln!(
            "v6={v6}: packets per host {per_host:?}, backends {:?}",
            tally(names.clone())
        );
        for (i, n) in per_host.iter().enumerate() {
            assert!(
                *n as f64 >= 0.15 * total as f64,
                "v6={v6}: host {i} carried {n} of {total} packets: {per_host:?}"
            );
        }
        assert_eq!(tally(names.clone()).len(), BACKENDS, "every backend served");
        // Every host's program places a flow where the config's ring says.
        for k in 0..9u16 {
            let i = usize::from(k) % HOSTS;
            let p = port + k * 31;
            assert_eq!(
                explained(&f, i, v6, p),
                names[usize::from(p - port)],
                "host {i}, flow from port {p}"
            );
        }
        first.insert(v6, names);
    }

    // Host 1 withdrawn: the router drops it within 3 s, and the same flows
    // (now carried by the two others) reach the same backends.
    let out = f.balancer(0, &["announce", "withdraw"]);
    assert!(out.contains("host withdrawn by the operator"), "{out}");
    for v6 in [false, true] {
        let took = f.until_next_hops(Fabric::vip(v6).ip(), &[1, 2], Duration::from_secs(3));
        eprintln!(
            "{}: host 1 left the route {took:?} after the withdrawal",
            Fabric::vip(v6)
        );
    }
    let idle = f.forwarded(0);
    for (v6, port) in [(false, 41_000), (true, 42_000)] {
        let again = flows(&f, v6, port);
        let moved = first[&v6]
            .iter()
            .zip(&again)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            moved, 0,
            "v6={v6}: flows that changed backend on other hosts"
        );
    }
    assert_eq!(f.forwarded(0), idle, "a withdrawn host gets no flows");

    let out = f.balancer(0, &["announce", "restore"]);
    assert!(out.contains("host in service"), "{out}");
    for v6 in [false, true] {
        f.until_next_hops(Fabric::vip(v6).ip(), &[0, 1, 2], Duration::from_secs(5));
    }
}

#[test]
fn kept_connections_survive_a_withdrawal_and_a_restore() {
    let f = fabric(&xdp_config(), 2);
    let vip = Fabric::vip(false);
    let stop = AtomicBool::new(false);
    let (requests, failures) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            f.client.enter(|| {
                let mut kept: Vec<(KeepAlive, String)> = balancer_tests::client::hold(vip, KEPT);
                let (mut requests, mut failures) = (0u64, Vec::new());
                let deadline = Instant::now() + Duration::from_secs(45);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    for (i, (c, name)) in kept.iter_mut().enumerate() {
                        requests += 1;
                        match c.get() {
                            Ok(n) if n == *name => {}
                            Ok(n) => failures.push(format!("connection {i}: {name} became {n}")),
                            Err(e) => failures.push(format!("connection {i}: {e}")),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                (requests, failures)
            })
        });
        std::thread::sleep(Duration::from_secs(2));
        let out = f.balancer(0, &["announce", "withdraw"]);
        assert!(out.contains("host withdrawn"), "{out}");
        let took = f.until_next_hops(vip.ip(), &[1, 2], Duration::from_secs(3));
        eprintln!("withdrawn from the router {took:?} after the command");
        // No new flow (and no kept one) reaches the withdrawn host.
        let idle = f.forwarded(0);
        let fresh: Vec<String> = f.client.enter(|| {
            (0..30)
                .map(|i| http_get(vip, None).unwrap_or_else(|e| panic!("new {i}: {e}")))
                .collect()
        });
        assert_eq!(fresh.len(), 30);
        assert_eq!(f.forwarded(0), idle, "the withdrawn host took traffic");
        let out = f.balancer(0, &["announce", "restore"]);
        assert!(out.contains("host in service"), "{out}");
        let took = f.until_next_hops(vip.ip(), &[0, 1, 2], Duration::from_secs(5));
        eprintln!("back in the route {took:?} after the restore");
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        load.join().expect("load thread")
    });
    eprintln!("{requests} requests on {KEPT} kept connections");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(requests >= (KEPT * 20) as u64, "only {requests} requests");
    // Restored: host 1 takes new flows again.
    let before = f.forwarded(0);
    f.client.enter(|| {
        for i in 0..60 {
            http_get(vip, None).unwrap_or_else(|e| panic!("after restore {i}: {e}"));
        }
    });
    assert!(
        f.forwarded(0) > before,
        "the restored host takes flows again"
    );
}

/// `nft` in host `i`: drops the host's own packets to backends' port 80,
/// so its checks fail while the XDP program (below netfilter) forwards on.
fn block_checks(f: &Fabric, i: usize, block: bool) {
    let ns = &f.hosts[i].ns;
    if block {
        for command in [
            "add table inet checks",
            "add chain inet checks out { type filter hook output priority 0 ; }",
            "add rule inet checks out tcp dport 80 drop",
        ] {
            let _ = ns.run("nft", &[command]);
        }
    } else {
        let _ = ns.run("nft", &["delete", "table", "inet", "checks"]);
    }
}

#[test]
fn a_failed_pool_withdraws_its_host_and_a_crashed_daemon_stays_until_bird_or_the_link_goes() {
    let mut f = fabric(&xdp_config(), 2);
    let vip = Fabric::vip(false).ip();
    let vip6 = Fabric::vip(true).ip();

    // Host 2's checks fail: its VIPs leave the route, and return after the
    // checks pass again and the hold-down.
    block_checks(&f, 1, true);
    let took = f.until_next_hops(vip, &[0, 2], Duration::from_secs(5));
    f.until_next_hops(vip6, &[0, 2], Duration::from_secs(5));
    eprintln!("pool down on host 2: withdrawn after {took:?}");
    block_checks(&f, 1, false);
    let took = f.until_next_hops(vip, &[0, 1, 2], Duration::from_secs(10));
    f.until_next_hops(vip6, &[0, 1, 2], Duration::from_secs(10));
    eprintln!("checks pass on host 2: announced again after {took:?}");
    assert!(
        took >= Duration::from_millis(2500),
        "back before the hold-down: {took:?}"
    );
    let status = f.balancer(1, &["announce", "status"]);
    assert!(status.contains("its pool is healthy"), "{status}");

    // Host 3's daemon dies: the program forwards on and BIRD keeps the
    // announcement, so its share of new flows is still served.
    let mut daemon = f.hosts[2].balancer.take().expect("daemon");
    daemon.signal(libc::SIGKILL);
    assert!(daemon.wait_timeout(Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        f.next_hops(vip).len(),
        3,
        "a dead daemon keeps its host announced"
    );
    let answers: Vec<String> = f.client.enter(|| {
        (0..90)
            .map(|i| {
                http_get(Fabric::vip(false), None)
                    .unwrap_or_else(|e| panic!("flow {i} with host 3's daemon dead: {e}"))
            })
            .collect()
    });
    assert_eq!(tally(answers).len(), BACKENDS);

    // Its BIRD stops: the session closes and the router drops the host.
    drop(f.hosts[2].bird.take());
    let took = f.until_next_hops(vip, &[0, 1], Duration::from_secs(3));
    eprintln!("host 3's BIRD stopped: withdrawn after {took:?}");

    // Host 1's link is cut: only BFD notices, within its detection time
    // (300 ms); without it the router would wait for the BGP hold time, 9 s.
    let cut = Instant::now();
    f.router.ip(&["link", "set", "ph1", "down"]);
    let took = f.until_next_hops(vip, &[1], Duration::from_secs(3));
    f.until_next_hops(vip6, &[1], Duration::from_secs(3));
    eprintln!(
        "host 1's link cut: withdrawn after {took:?} ({:?} since the cut)",
        cut.elapsed()
    );
    assert!(took <= Duration::from_millis(1500), "BFD took {took:?}");
    let answers: Vec<String> = f.client.enter(|| {
        (0..30)
            .map(|i| {
                http_get(Fabric::vip(false), None)
                    .unwrap_or_else(|e| panic!("flow {i} on one host: {e}"))
            })
            .collect()
    });
    assert_eq!(answers.len(), 30);
}

/// The hosts' config in `proxy` mode: the host answers for the VIP itself.
fn proxy_config() -> String {
    let list: Vec<String> = (0..BACKENDS)
        .map(|i| format!("{{ address: \"{}:80\" }}", backend(i)))
        .collect();
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{}\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 200ms, jitter: 1ms, rise: 2, fall: 2, passive: false }}
    backends: [{}]
announce: {{ interface: vip0, min_healthy: 1 }}
",
        Fabric::vip(false),
        list.join(", ")
    )
}

/// Connections host `i`'s proxy accepted.
fn accepted(f: &Fabric, i: usize) -> u64 {
    let state = f.hosts[i].dir.join("state");
    std::thread::sleep(Duration::from_millis(1100));
    let text = f.hosts[i].ns.run(
        balancer_tests::balancer_bin().to_str().expect("utf-8"),
        &["status", "--state-dir", state.to_str().expect("utf-8")],
    );
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("accepted="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn proxy_mode_hosts_share_new_connections_and_a_withdrawn_one_gets_none() {
    // Only the IPv4 VIP here: wait for it alone.
    let mut f = Fabric::new(HOSTS, BACKENDS);
    for i in 0..HOSTS {
        f.start_balancer(i, &proxy_config(), 1);
    }
    f.start_router_bird();
    for i in 0..HOSTS {
        f.start_host_bird(i);
    }
    let vip = Fabric::vip(false);
    f.until_next_hops(vip.ip(), &[0, 1, 2], Duration::from_secs(40));
    let answers: Vec<String> = f.client.enter(|| {
        (0..120)
            .map(|i| http_get(vip, None).unwrap_or_else(|e| panic!("connection {i}: {e}")))
            .collect()
    });
    assert_eq!(tally(answers).len(), BACKENDS);
    let shares: Vec<u64> = (0..HOSTS).map(|i| accepted(&f, i)).collect();
    eprintln!("connections per host: {shares:?}");
    for (i, n) in shares.iter().enumerate() {
        assert!(*n >= 18, "host {i} accepted {n} of 120: {shares:?}");
    }
    let out = f.balancer(0, &["announce", "withdraw"]);
    assert!(out.contains("host withdrawn"), "{out}");
    f.until_next_hops(vip.ip(), &[1, 2], Duration::from_secs(3));
    f.client.enter(|| {
        for i in 0..60 {
            http_get(vip, None).unwrap_or_else(|e| panic!("withdrawn, connection {i}: {e}"));
        }
    });
    assert_eq!(
        accepted(&f, 0),
        shares[0],
        "the withdrawn host accepted new connections"
    );
}

/// `config/bird/` as shipped parses (`bird -p` reads the file and exits).
#[test]
fn the_example_bird_configs_parse() {
    for name in ["host.conf", "router.conf"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/bird")
            .join(name);
        let out = std::process::Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&path)
            .output()
            .expect("run bird");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
