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
    // The interface is the daemon's: an address taken off by someone else
    // comes back, a local route deleted comes back, and an address it does
    // not announce is taken off.
    t.lb.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "vip0"]);
    until_held(&t, true, Duration::from_secs(2));
    t.lb.ip(&[
        "route", "del", "local", VIP, "dev", "vip0", "table", "local",
    ]);
    let start = Instant::now();
    while held(&t) != (true, true) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the local route stays deleted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.lb.ip(&["addr", "add", "198.18.100.99/32", "dev", "vip0"]);
    let start = Instant::now();
    while t
        .lb
        .run("ip", &["addr", "show", "dev", "vip0"])
        .contains("198.18.100.99")
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "a stray address stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// `balancer announce ...` in the balancer's namespace, with the config the
/// test wrote; its output.
fn announce(t: &Topology, action: &str) -> String {
    let config = t.path("balancer.yaml");
    let bin = balancer_tests::balancer_bin();
    t.lb.run(
        bin.to_str().expect("utf-8"),
        &["announce", action, "-c", config.to_str().expect("utf-8")],
    )
}

/// The lines of `/metrics` about the VIP's announcement.
fn metric_lines(t: &Topology) -> Vec<String> {
    t.lb.run(
        "curl",
        &["-s", "--max-time", "5", "http://127.0.0.1:9900/metrics"],
    )
    .lines()
    .filter(|l| l.starts_with("balancer_vip_announce") && l.contains(VIP))
    .map(str::to_owned)
    .collect()
}

#[test]
fn the_operator_withdraws_the_host_across_a_restart_and_restores_it() {
    let t = Topology::new(2);
    let backends: Vec<Process> = nginx::start_all(&t, 80, false);
    t.lb.sysctl("net.ipv4.ip_nonlocal_bind", "1");
    let lb = t.start_balancer(&config(), 1);
    until_held(&t, true, Duration::from_secs(10));
    let status = announce(&t, "status");
    assert!(
        status.contains("host in service") && status.contains(VIP) && status.contains("announced"),
        "{status}"
    );
    let metrics = metric_lines(&t);
    assert!(
        metrics
            .iter()
            .any(|l| l.starts_with("balancer_vip_announced{") && l.ends_with(" 1")),
        "{metrics:?}"
    );

    // Withdrawn: off the interface by the time the command answers.
    let out = announce(&t, "withdraw");
    assert!(out.contains("host withdrawn by the operator"), "{out}");
    assert!(out.contains("the host is withdrawn"), "{out}");
    assert_eq!(held(&t), (false, false), "withdrawn at once");
    let metrics = metric_lines(&t);
    assert!(
        metrics
            .iter()
            .any(|l| l.starts_with("balancer_vip_announced{") && l.ends_with(" 0"))
            && metrics
                .iter()
                .any(|l| l.contains("reason=\"withdrawn\"") && l.ends_with(" 1")),
        "{metrics:?}"
    );

    // A restart keeps the host withdrawn, past the hold-down.
    drop(lb);
    let lb = t.start_balancer(&config(), 1);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(held(&t), (false, false), "still withdrawn after a restart");
    assert!(
        lb.output().contains("the host stays withdrawn"),
        "{}",
        lb.output()
    );
    let state = t.path("state");
    let status = t.lb.run(
        balancer_tests::balancer_bin().to_str().expect("utf-8"),
        &["status", "--state-dir", state.to_str().expect("utf-8")],
    );
    assert!(
        status.contains("announcements on vip0: host withdrawn"),
        "{status}"
    );

    // Restored: the pool qualified all along, so it is back at once.
    let out = announce(&t, "restore");
    assert!(out.contains("host in service"), "{out}");
    assert_eq!(held(&t), (true, true), "restored at once");

    // A clean stop withdraws a VIP the host answers for itself.
    let mut lb = lb;
    lb.signal(libc::SIGTERM);
    assert!(
        lb.wait_timeout(Duration::from_secs(10)).is_some(),
        "stopped"
    );
    assert_eq!(held(&t), (false, false), "withdrawn by the stop");
    drop(backends);
}

/// An upgrade hands the announcements over as they are: the address stays
/// on the interface throughout, and the old daemon's exit takes nothing
/// off (the new one adopted it).
#[test]
fn an_upgrade_keeps_the_announcement_throughout() {
    let t = Topology::new(2);
    let backends: Vec<Process> = nginx::start_all(&t, 80, false);
    t.lb.sysctl("net.ipv4.ip_nonlocal_bind", "1");
    let mut old = t.start_balancer(&config(), 1);
    until_held(&t, true, Duration::from_secs(10));
    let watch = std::sync::atomic::AtomicBool::new(true);
    let gaps = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut gaps = 0;
            while watch.load(std::sync::atomic::Ordering::Relaxed) {
                if held(&t) != (true, true) {
                    gaps += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            gaps
        });
        let new = balancer_tests::upgrade_balancer(&t.lb, t.dir.path(), "balancer-new.log");
        assert!(
            old.wait_timeout(Duration::from_secs(15)).is_some(),
            "the old daemon exits"
        );
        std::thread::sleep(Duration::from_secs(1));
        watch.store(false, std::sync::atomic::Ordering::Relaxed);
        (watcher.join().expect("watcher"), new)
    });
    let (gaps, new) = gaps;
    assert_eq!(gaps, 0, "the VIP left the interface during the upgrade");
    assert!(!old.output().contains("withdrawn"), "{}", old.output());
    let out = announce(&t, "status");
    assert!(out.contains("announced"), "{out}");
    drop((new, backends));
}
