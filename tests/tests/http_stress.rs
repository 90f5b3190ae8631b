//! The HTTP layer under hostile or failing conditions: a backend killed
//! under load fails no idempotent request, 2,000 slowloris connections are
//! closed at the head timeout while a normal client is served and the
//! daemon's descriptors and memory come back, and HTTP/2 floods (python3-h2)
//! cost bounded memory while another client is served.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology,
    client::{KeepAlive, connect},
    nginx, scripts,
    sys::{open_fds, rss_kib},
    topology::VIP4,
};

fn listener(pool: &str, http: &str) -> String {
    format!(
        "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: {pool}
    max_connections: 5000
    http: {{ {http} }}
pools:
  - name: web
    algorithm: round_robin
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
    backends:
      - address: \"198.18.1.11:80\"
      - address: \"198.18.1.12:80\"
      - address: \"198.18.1.13:80\"
"
    )
}

#[test]
fn a_backend_killed_under_load_fails_no_idempotent_request() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = t.start_balancer(&listener("web", "response_timeout: 5s"), 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    t.client.enter(|| {
                        let mut failures = Vec::new();
                        let mut c = KeepAlive::open(vip).expect("connect");
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                            match c.get() {
                                Ok(_) => {
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    failures.push(e);
                                    c = KeepAlive::open(vip).expect("reconnect");
                                }
                            }
                        }
                        failures
                    })
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        while done.load(Ordering::Relaxed) < 500 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        t.backends[1].kill_all();
        let killed_at = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < killed_at + 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("client"))
            .collect()
    });
    let total = done.load(Ordering::Relaxed);
    assert!(total >= 2500, "only {total} requests in the time");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {failures:?}",
        failures.len()
    );
}

#[test]
fn slowloris_connections_are_closed_at_the_head_timeout_and_leave_nothing_behind() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let lb = t.start_balancer(&listener("web", "header_timeout: 3s"), 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let pid = lb.pid();
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid).expect("rss"));
    let served = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (answered_408, peak_fds) = std::thread::scope(|scope| {
        let normal = scope.spawn(|| {
            t.client.enter(|| {
                while !stop.load(Ordering::Relaxed) {
                    let mut c = KeepAlive::open(vip).expect("a normal client connects");
                    c.get().expect("a normal client is served");
                    served.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        });
        let slow = t.client.enter(|| slowloris(vip, pid));
        stop.store(true, Ordering::Relaxed);
        normal.join().expect("normal client");
        slow
    });
    let took = started.elapsed();
    assert!(
        answered_408 >= 1900,
        "only {answered_408} of 2000 got a 408"
    );
    assert!(took < Duration::from_secs(9), "closing took {took:?}");
    assert!(
        peak_fds >= fds_before + 1500,
        "the slow connections were open: {peak_fds}"
    );
    assert!(
        served.load(Ordering::Relaxed) >= 20,
        "the normal client was served throughout"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds(pid) > fds_before + 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open_fds(pid) <= fds_before + 10,
        "descriptors: {fds_before} before, {} after",
        open_fds(pid)
    );
    // Freed buffers go back to the system within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut rss_after = rss_kib(pid).expect("rss");
    while rss_after > rss_before + 8 * 1024 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        rss_after = rss_kib(pid).expect("rss");
    }
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "memory: {rss_before} KiB before, {rss_after} KiB after"
    );
}

/// 2,000 connections that send a head byte a second; returns how many got
/// a 408, and the daemon's descriptors while all were open.
fn slowloris(vip: SocketAddr, pid: u32) -> (usize, usize) {
    let mut slow: Vec<TcpStream> = (0..2000)
        .map(|i| {
            let mut s = connect(vip, None).unwrap_or_else(|e| panic!("slow client {i}: {e}"));
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
                .expect("first bytes");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    // The daemon accepts from its backlog as fast as it can: the peak is
    // the most seen while the slow connections wait.
    let mut peak = open_fds(pid);
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(open_fds(pid));
    }
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        slow.retain_mut(|s| {
            // One more header byte every second: never a whole head.
            let _ = s.write_all(b"X");
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    if buf[..n].starts_with(b"HTTP/1.1 408") {
                        answered += 1;
                    }
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(_) => false,
            }
        });
    }
    assert!(
        slow.is_empty(),
        "{} slow connections still open after 10 s",
        slow.len()
    );
    (answered, peak)
}

#[test]
fn http2_floods_cost_bounded_memory_and_another_client_is_served() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let lb = t.start_balancer(&listener("web", "max_streams: 100"), 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let pid = lb.pid();
    let rss_before = rss_kib(pid).expect("rss");
    for kind in ["rapid_reset", "continuation", "ping", "settings"] {
        let flood = scripts::command(&t.client, "h2_flood.py", &["198.18.0.10", "80", kind, "5"]);
        let mut flood = Process::spawn(
            &format!("{kind} flood"),
            flood,
            t.path(&format!("{kind}.log")),
        );
        // Another client is served while the flood runs.
        let served = t.client.enter(|| {
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut n = 0;
            while Instant::now() < deadline {
                let mut c = KeepAlive::open(vip).expect("connect");
                c.get()
                    .unwrap_or_else(|e| panic!("during the {kind} flood: {e}"));
                n += 1;
            }
            n
        });
        assert!(served >= 10, "{kind}: only {served} requests served");
        let status = flood.wait_timeout(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "{kind}: {}",
            flood.output()
        );
        let out = flood.output();
        if matches!(kind, "rapid_reset" | "continuation") {
            assert!(
                out.starts_with("closed"),
                "{kind}: the attacker's connection stays open: {out}"
            );
        }
        let rss = rss_kib(pid).expect("rss");
        assert!(
            rss <= rss_before + 64 * 1024,
            "{kind}: memory grew from {rss_before} to {rss} KiB ({out})"
        );
    }
}
