//! Backend discovery end to end. DNS: a real authoritative server (Knot)
//! in a test namespace serves A, AAAA and SRV records; the pool follows
//! its changes on both planes (the XDP program's Maglev ring and the
//! proxy), SRV weights show in the spread, a stopped server leaves the
//! last set serving, and a new backend of a checked pool takes no traffic
//! before its checks pass. Files: a watched file of backends is rewritten
//! in place and replaced by rename; a bad one is refused with its position
//! and the last good set serves on.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology,
    client::{http_get, tally},
    dns::Knot,
    l2::{L2, VIP, backend, backend6},
    nginx,
    sys::{ms_between, now_of_day},
    topology::backend_addr,
};

/// Where the proxy plane listens in the XDP network (the balancer's own
/// address; the XDP program passes what is not for a VIP).
const PROXY: ([u8; 4], u16) = ([198, 18, 0, 2], 8080);
/// The records' TTL (the zone's default).
const TTL_MS: f64 = 1000.0;

/// A records for backends `which` under `name`.
fn a_records(name: &str, which: &[usize]) -> String {
    which.iter().fold(String::new(), |mut out, i| {
        let _ = writeln!(out, "{name} IN A {}", backend(*i));
        out
    })
}

/// The DNS server runs on the last backend's namespace.
fn dns_server(t: &L2, records: &str) -> Knot {
    let last = t.backends.len() - 1;
    Knot::start(
        &t.backends[last],
        t.dir.path(),
        IpAddr::V4(backend(last)),
        records,
    )
}

fn config(pool: &str, server: usize) -> String {
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: web }}
  - {{ name: proxy, address: \"198.18.0.2:8080\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    algorithm: maglev
{pool}    discover:
      dns: {{ name: web.disc.test, port: 80, resolvers: [\"{}\"], min_interval: 200ms }}
xdp: {{ interface: eth0, forwarding: dsr }}
",
        backend(server)
    )
}

/// Which backends answer `n` new connections on each plane.
fn spread(t: &L2, n: usize) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    t.client.enter(|| {
        let ask = |to: SocketAddr| {
            tally((0..n).map(|i| http_get(to, None).unwrap_or_else(|e| panic!("{to} #{i}: {e}"))))
        };
        (ask(L2::vip(80)), ask(PROXY.into()))
    })
}

fn names(m: &BTreeMap<String, usize>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Changes the records at a time of day it returns, then waits until the
/// daemon logs a discovered change naming `needle`; returns how long after
/// the change that was, in ms.
fn change(lb: &Process, knot: &mut Knot, records: &str, needle: &str) -> f64 {
    let seen = lb.output().matches("discovered backends changed").count();
    let at = now_of_day();
    knot.set(records);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = lb.output();
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("discovered backends changed"))
            .collect();
        if lines.len() > seen && lines[seen..].iter().any(|l| l.contains(needle)) {
            let logged = lb.logged_at(&["discovered backends changed", needle], Duration::ZERO);
            return ms_between(at, logged);
        }
        assert!(
            Instant::now() < deadline,
            "no change with {needle} logged:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pool_follows_a_records_on_both_planes_and_keeps_its_set_when_dns_stops() {
    let t = L2::new(4);
    let _nginx = t.nginx_on_vip_and_addresses(3, true);
    let mut knot = dns_server(
        &t,
        &(a_records("web", &[0, 1]) + &a_records("web2", &[0, 1, 2])),
    );
    let lb = t.start_balancer(&config("", 3), 2);
    let (xdp, proxy) = spread(&t, 60);
    assert_eq!(names(&xdp), ["backend-1", "backend-2"], "{xdp:?}");
    assert_eq!(names(&proxy), ["backend-1", "backend-2"], "{proxy:?}");

    // `explain --against` asks both configs' sources: what a move to the
    // other name would do to the ring.
    let next = t.dir.path().join("next.yaml");
    std::fs::write(
        &next,
        config("", 3).replace("web.disc.test", "web2.disc.test"),
    )
    .expect("write");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let explained = t.lb.run(
        balancer_tests::balancer_bin().to_str().expect("utf-8"),
        &[
            "explain",
            "-c",
            &path(&t.dir.path().join("balancer.yaml")),
            "--against",
            &path(&next),
        ],
    );
    assert!(
        explained.contains("pool `web` has 2 discovered backends"),
        "{explained}"
    );
    assert!(
        explained.contains("pool `web` has 3 discovered backends"),
        "{explained}"
    );
    let gains = explained
        .lines()
        .find(|l| l.trim_start().starts_with("198.18.0.13:80"))
        .unwrap_or_else(|| panic!("{explained}"));
    assert!(gains.contains("loses      0"), "{explained}");

    // Added: within the TTL plus one second, on both planes.
    let took = change(
        &lb,
        &mut knot,
        &a_records("web", &[0, 1, 2]),
        "added [198.18.0.13:80]",
    );
    eprintln!("A record added: the pool had it {took:.0} ms later");
    assert!(took <= TTL_MS + 1000.0, "{took:.0} ms");
    let (xdp, proxy) = spread(&t, 90);
    assert_eq!(
        names(&xdp),
        ["backend-1", "backend-2", "backend-3"],
        "{xdp:?}"
    );
    assert_eq!(
        names(&proxy),
        ["backend-1", "backend-2", "backend-3"],
        "{proxy:?}"
    );

    // Removed: no new connection reaches it on either plane.
    let took = change(
        &lb,
        &mut knot,
        &a_records("web", &[1, 2]),
        "removed [198.18.0.11:80]",
    );
    eprintln!("A record removed: the pool lost it {took:.0} ms later");
    assert!(took <= TTL_MS + 1000.0, "{took:.0} ms");
    let (xdp, proxy) = spread(&t, 60);
    assert_eq!(names(&xdp), ["backend-2", "backend-3"], "{xdp:?}");
    assert_eq!(names(&proxy), ["backend-2", "backend-3"], "{proxy:?}");

    // The server goes away: lookups fail, said once, and the last set
    // serves on through several failed rounds.
    knot.stop();
    let mut lb = lb;
    lb.wait_for("discovery failed", 1, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    let (xdp, proxy) = spread(&t, 40);
    assert_eq!(names(&xdp), ["backend-2", "backend-3"], "{xdp:?}");
    assert_eq!(names(&proxy), ["backend-2", "backend-3"], "{proxy:?}");
    assert_eq!(
        lb.output().matches("discovery failed").count(),
        1,
        "logged once per streak"
    );
    let status = t.lb.run(
        balancer_tests::balancer_bin().to_str().expect("utf-8"),
        &[
            "status",
            "--state-dir",
            t.dir.path().join("state").to_str().expect("utf-8"),
        ],
    );
    assert!(
        status.contains("web.disc.test. A") && status.contains("failing ("),
        "{status}"
    );
    assert!(status.contains("(dns)"), "{status}");
}

#[test]
fn srv_priorities_and_weights_decide_the_spread_and_aaaa_records_serve_ipv6() {
    let t = L2::new(4);
    let _nginx = t.nginx_on_vip_and_addresses(3, true);
    let records = |preferred: bool| {
        let mut r = format!(
            "b1 IN A {}\nb2 IN A {}\nb3 IN A {}\n_http._tcp IN SRV 20 10 80 b3\n",
            backend(0),
            backend(1),
            backend(2)
        );
        if preferred {
            r += "_http._tcp IN SRV 10 60 80 b1\n_http._tcp IN SRV 10 20 80 b2\n";
        }
        for i in 0..3 {
            let _ = writeln!(r, "web6 IN AAAA {}", backend6(i));
        }
        r
    };
    let mut knot = dns_server(&t, &records(true));
    let server = backend(3);
    let yaml = format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: web }}
  - {{ name: proxy, address: \"198.18.0.2:8080\", protocol: tcp, mode: proxy, pool: web }}
  - {{ name: six, address: \"198.18.0.2:8086\", protocol: tcp, mode: proxy, pool: six }}
pools:
  - name: web
    algorithm: maglev
    discover:
      dns: {{ name: _http._tcp.disc.test, type: SRV, resolvers: [\"{server}\"], min_interval: 200ms }}
  - name: six
    discover:
      dns: {{ name: web6.disc.test, type: AAAA, port: 80, resolvers: [\"{server}\"] }}
xdp: {{ interface: eth0, forwarding: dsr }}
"
    );
    let lb = t.start_balancer(&yaml, 3);
    // Priority 10 only; weights 60:20, so about three in four.
    let (xdp, proxy) = spread(&t, 200);
    for (plane, m) in [("xdp", &xdp), ("proxy", &proxy)] {
        assert_eq!(names(m), ["backend-1", "backend-2"], "{plane}: {m:?}");
        let share = m["backend-1"] as f64 / 200.0;
        eprintln!("{plane}: weight 60 of 80 took {share:.2} of new connections");
        assert!((0.6..=0.9).contains(&share), "{plane}: {m:?}");
    }
    // IPv6 backends from AAAA records, through the proxy.
    let six = t.client.enter(|| {
        tally((0..30).map(|i| {
            http_get(([198, 18, 0, 2], 8086).into(), None).unwrap_or_else(|e| panic!("#{i}: {e}"))
        }))
    });
    assert_eq!(
        names(&six),
        ["backend-1", "backend-2", "backend-3"],
        "{six:?}"
    );
    let status = std::fs::read_to_string(t.dir.path().join("state/status.json")).expect("status");
    assert!(
        status.contains("[fd00:2::b]:80") || status.contains("fd00:2::"),
        "{status}"
    );

    // Without the preferred records, the next priority serves.
    let took = change(&lb, &mut knot, &records(false), "added [198.18.0.13:80]");
    assert!(took <= TTL_MS + 1000.0, "{took:.0} ms");
    let (xdp, proxy) = spread(&t, 30);
    assert_eq!(names(&xdp), ["backend-3"], "{xdp:?}");
    assert_eq!(names(&proxy), ["backend-3"], "{proxy:?}");
}

#[test]
fn a_discovered_backend_of_a_checked_pool_gets_no_traffic_before_its_checks_pass() {
    let t = L2::new(4);
    let _nginx = t.nginx_on_vip_and_addresses(3, true);
    let mut knot = dns_server(&t, &a_records("web", &[0, 1]));
    let health = "    health: { kind: http, path: /, interval: 400ms, timeout: 200ms, rise: 3, fall: 2, passive: false }\n";
    let lb = t.start_balancer(&config(health, 3), 2);
    let (xdp, _) = spread(&t, 30);
    assert_eq!(names(&xdp), ["backend-1", "backend-2"], "{xdp:?}");
    let at = now_of_day();
    knot.set(&a_records("web", &[0, 1, 2]));
    // New connections on both planes, each stamped, until it is up.
    let asked = t.client.enter(|| {
        let mut asked = Vec::new();
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end {
            for to in [L2::vip(80), SocketAddr::from(PROXY)] {
                let answer = http_get(to, None).unwrap_or_else(|e| panic!("{to}: {e}"));
                asked.push((now_of_day(), answer));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        asked
    });
    let added = lb.logged_at(
        &["discovered backends changed", "198.18.0.13:80"],
        Duration::ZERO,
    );
    let up = lb.logged_at(&["198.18.0.13:80", "to=up"], Duration::ZERO);
    eprintln!(
        "added {:.0} ms after the change, up {:.0} ms after that",
        ms_between(at, added),
        ms_between(added, up)
    );
    let first = asked
        .iter()
        .find(|(_, a)| a == "backend-3")
        .map(|(when, _)| *when)
        .expect("backend-3 served once up");
    // The planes change just before the line is written (a logged change
    // is in effect), so a connection may beat the line by a few ms.
    assert!(
        first >= up - 0.1,
        "backend-3 answered {:.0} ms before it was up",
        (up - first) * 1000.0
    );
    // Rise 3 at 400 ms: the checks took time, so the test saw the gap.
    assert!(ms_between(added, up) >= 500.0, "up too soon to tell");
}

/// Writes `backends` (address, weight) as a discovery file at `path`,
/// through a rename when `atomic`, as config tools do.
fn write_file(path: &std::path::Path, backends: &[(SocketAddr, u32)], atomic: bool) {
    let text: String = std::iter::once("backends:\n".to_owned())
        .chain(
            backends
                .iter()
                .map(|(a, w)| format!("  - {{ address: \"{a}\", weight: {w} }}\n")),
        )
        .collect();
    if atomic {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    } else {
        std::fs::write(path, text).expect("write");
    }
}

/// Waits until the daemon has logged `n` discovered changes.
fn changes(lb: &mut Process, n: usize) {
    lb.wait_for("discovered backends changed", n, Duration::from_secs(5));
}

#[test]
fn a_watched_file_adds_removes_and_reweighs_and_a_bad_one_is_refused_with_its_position() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let file = t.dir.path().join("web-backends.yaml");
    let b = |i| backend_addr(i, 80, false);
    write_file(&file, &[(b(0), 100)], false);
    let yaml = format!(
        "version: 1
listeners:
  - {{ name: web, address: \"198.18.0.10:80\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    algorithm: weighted_round_robin
    discover: {{ file: {} }}
",
        file.display()
    );
    let mut lb = t.start_balancer(&yaml, 1);
    let ask = |n| {
        t.client.enter(|| {
            tally((0..n).map(|i| {
                http_get(([198, 18, 0, 10], 80).into(), None)
                    .unwrap_or_else(|e| panic!("#{i}: {e}"))
            }))
        })
    };
    assert_eq!(names(&ask(10)), ["backend-1"]);

    // Written in place: one more backend.
    write_file(&file, &[(b(0), 100), (b(1), 100)], false);
    changes(&mut lb, 1);
    assert_eq!(names(&ask(20)), ["backend-1", "backend-2"]);

    // Replaced by rename, as tools write: reweighed (1:3) and one more.
    write_file(&file, &[(b(0), 100), (b(1), 300), (b(2), 100)], true);
    changes(&mut lb, 2);
    let m = ask(100);
    let heavy = m.get("backend-2").copied().unwrap_or(0);
    assert!((50..=70).contains(&heavy), "weights 1:3:1 over 100: {m:?}");
    assert_eq!(m.len(), 3, "{m:?}");

    // Removed.
    write_file(&file, &[(b(1), 100), (b(2), 100)], true);
    changes(&mut lb, 3);
    assert_eq!(names(&ask(20)), ["backend-2", "backend-3"]);

    // A bad file: refused with file:line:column, the last set serves on.
    std::fs::write(
        &file,
        format!(
            "backends:\n  - address: \"{}\"\n  - address: nowhere\n",
            b(0)
        ),
    )
    .expect("write");
    let at = format!("{}:3:", file.display());
    lb.wait_for(&at, 1, Duration::from_secs(5));
    assert!(
        lb.output().contains("backends[1].address"),
        "{}",
        lb.output()
    );
    assert_eq!(names(&ask(20)), ["backend-2", "backend-3"]);
    let text = t.lb.run(
        "curl",
        &["-s", "--max-time", "5", "http://127.0.0.1:9900/metrics"],
    );
    assert!(
        text.contains("balancer_discovery_failing{source=\"file\""),
        "{text}"
    );

    // Fixed: served again.
    write_file(&file, &[(b(0), 100)], true);
    changes(&mut lb, 4);
    assert_eq!(names(&ask(10)), ["backend-1"]);
    assert!(
        lb.output().contains("discovery works again"),
        "{}",
        lb.output()
    );
}
