//! Announcements on one host, before BIRD enters: the daemon makes the
//! announcement interface, puts a proxy VIP's address on it once the pool
//! has qualified for the hold-down (the host answers for it: its local route
//! stays), takes it off when the pool has no healthy backend, and puts it
//! back when the backends return; a clean stop withdraws it.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use balancer_tests::{Process, Topology, client::http_get, nginx};

const VIP: &str = "198.18.100.20";

fn config() -> String {
    format!(
        "version: 1
listeners:
  - {{ name: web, address: \"{VIP}:80\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 200ms, jitter: 1ms, rise: 1, fall: 1, passive: false }}
    backends: [{{ address: \"198.18.1.11:80\" }}, {{ address: \"198.18.1.12:80\" }}]
announce: {{ interface: vip0, min_healthy: 1 }}
"
    )
}

/// Whether `vip0` in the balancer's namespace holds the VIP, and whether
/// table `local` has its route.
fn held(t: &Topology) -> (bool, bool) {
    let addrs = t.lb.run("ip", &["-4", "addr", "show", "dev", "vip0"]);
    let local = t.lb.run("ip", &["-4", "route", "show", "table", "local"]);
    (
        addrs.contains(&format!("{VIP}/32")),
        local.lines().any(|l| l.contains(VIP) && l.contains("vip0")),
    )
}

/// Waits up to `limit` for [`held`] to say `want`; returns how long it took.
fn until_held(t: &Topology, want: bool, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (address, _) = held(t);
        if address == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the VIP was not {} within {limit:?}",
            if want { "announced" } else { "withdrawn" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_proxy_vip_is_announced_after_the_hold_withdrawn_when_its_pool_fails_and_restored() {
    let t = Topology::new(2);
    let mut backends: Vec<Process> = nginx::start_all(&t, 80, false);
    // The listener binds the VIP before it is announced.
    t.lb.sysctl("net.ipv4.ip_nonlocal_bind", "1");
    let lb = t.start_balancer(&config(), 1);
    let took = until_held(&t, true, Duration::from_secs(10));
    assert!(
        took >= Duration::from_secs(2),
        "announced after {took:?}, before the hold-down"
    );
    assert_eq!(held(&t), (true, true), "a proxy VIP keeps its local route");
    let vip: SocketAddr = (VIP.parse::<std::net::IpAddr>().expect("ip"), 80).into();
    assert!(t.client.enter(|| http_get(vip, None)).is_ok());

    // No healthy backend: withdrawn within a few checks. (Killing nginx's
    // master leaves its workers listening; everything in the namespaces
    // goes.)
    backends.clear();
    for b in &t.backends {
        b.kill_all();
    }
    let took = until_held(&t, false, Duration::from_secs(5));
    eprintln!("withdrawn {took:?} after the backends stopped");

    // Back: announced again once the pool has qualified for the hold-down.
    backends = nginx::start_all(&t, 80, false);
    let took = until_held(&t, true, Duration::from_secs(10));
    eprintln!("announced again {took:?} after the backends returned");
    assert!(t.client.enter(|| http_get(vip, None)).is_ok());
    let log = lb.output();
    assert!(log.contains("created the announcement interface"), "{log}");
    assert!(
        log.contains("withdrawn") && log.contains("announced"),
        "{log}"
    );
    drop(backends);
}
