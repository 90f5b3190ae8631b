//! TCP behaviour through the proxy with real peers: a stopped backend
//! costing clients nothing, a silent one timing out, the connection limit,
//! and graceful shutdown. What each engine must do alike (half-close, large
//! transfers, byte counts, idle timeout) is in `engines.rs`.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use balancer_tests::{
    Topology,
    client::{connect, http_get, tally},
    config::simple,
    nginx,
    sys::open_fds,
    topology::{VIP4, backend_addr},
};

fn one_backend(port: u16) -> Vec<(String, u32)> {
    vec![(backend_addr(0, port, false).to_string(), 100)]
}

#[test]
fn stopped_backend_costs_clients_nothing() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let backends: Vec<_> = (0..3)
        .map(|i| (backend_addr(i, 80, false).to_string(), 100))
        .collect();
    let lb = t.start_balancer(
        &simple("web", "198.18.0.10:80", "tcp", &[], "round_robin", backends),
        1,
    );
    let vip: SocketAddr = (VIP4, 80).into();
    // Warm up (the pipe pool grows to what sequential requests need), then
    // take the descriptor baseline.
    for _ in 0..6 {
        let body = t.client.enter(|| http_get(vip, None));
        assert!(body.is_ok_and(|b| b.starts_with("backend-")));
    }
    let fds_before = open_fds(lb.pid());

    // Backend 2 dies: master and worker.
    t.backends[1].kill_all();
    let start = Instant::now();
    let results: Vec<Result<String, String>> = t
        .client
        .enter(|| (0..500).map(|_| http_get(vip, None)).collect());
    let elapsed = start.elapsed();
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of 500 failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let names = tally(results.into_iter().map(Result::unwrap));
    assert_eq!(names.get("backend-2"), None);
    assert_eq!(names.values().sum::<usize>(), 500);
    // The dead backend is logged, but at most once per second.
    let lines = lb.output().matches("backend connect failed").count();
    let allowed = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=allowed).contains(&lines),
        "{lines} failure log lines in {elapsed:?}"
    );
    // Failed connects and finished connections leave no descriptor behind.
    let fds_after = open_fds(lb.pid());
    assert!(
        fds_after <= fds_before + 4,
        "descriptors grew from {fds_before} to {fds_after}"
    );
}

#[test]
fn silent_backend_times_out_and_the_client_moves_on() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let backends: Vec<_> = (0..3)
        .map(|i| (backend_addr(i, 80, false).to_string(), 100))
        .collect();
    let extra = ["connect_timeout: 300ms"];
    let cfg = simple(
        "web",
        "198.18.0.10:80",
        "tcp",
        &extra,
        "round_robin",
        backends,
    );
    let lb = t.start_balancer(&cfg, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    assert!(t.client.enter(|| http_get(vip, None)).is_ok());
    // Backend 2's link goes down: its SYNs vanish without an answer, the
    // worst case for a client (no reset to react to).
    t.backends[1].ip(&["link", "set", "eth0", "down"]);
    let timings: Vec<(Result<String, String>, Duration)> = t.client.enter(|| {
        (0..30)
            .map(|_| {
                let start = Instant::now();
                (http_get(vip, None), start.elapsed())
            })
            .collect()
    });
    for (i, (r, took)) in timings.iter().enumerate() {
        let body = r.as_ref().unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_ne!(body, "backend-2");
        // A detour costs one connect timeout, never the client's connection.
        assert!(
            *took < Duration::from_millis(1500),
            "request {i} took {took:?}"
        );
    }
    let detours = timings
        .iter()
        .filter(|(_, took)| *took >= Duration::from_millis(300))
        .count();
    assert!(
        detours >= 5,
        "about a third of first attempts should meet the silent backend; {detours} detours"
    );
    assert!(lb.output().contains("no answer within 300ms"));
}

#[test]
fn connection_limit_closes_extra_connections_at_once() {
    let t = Topology::new(1);
    let _nginx = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "backend-1",
        &[backend_addr(0, 80, false)],
    );
    let cfg = simple(
        "web",
        "198.18.0.10:80",
        "tcp",
        &["max_connections: 5"],
        "round_robin",
        one_backend(80),
    );
    let _lb = t.start_balancer(&cfg, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    t.client.enter(|| {
        let mut held: Vec<_> = (0..5).map(|_| keepalive(vip)).collect();
        // The sixth is accepted by the kernel and closed by the balancer at
        // once, without a byte from the backend.
        let mut sixth = connect(vip, None).expect("connect");
        sixth
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let _ = sixth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 64];
        let n = sixth.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the sixth connection got an answer");
        // The five held ones still work.
        for s in &mut held {
            get_on(s);
        }
        // A slot freed is a slot usable.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(http_get(vip, None).as_deref(), Ok("backend-1"));
    });
}

fn keepalive(vip: SocketAddr) -> std::net::TcpStream {
    let mut s = connect(vip, None).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    get_on(&mut s);
    s
}

/// One keep-alive GET on an open connection; panics unless backend-1 answers.
fn get_on(s: &mut std::net::TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !String::from_utf8_lossy(&buf).ends_with("backend-1\n") {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sigterm_stops_accepting_and_lets_open_connections_finish() {
    let t = Topology::new(1);
    let _nginx = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "backend-1",
        &[backend_addr(0, 80, false)],
    );
    let cfg = simple(
        "web",
        "198.18.0.10:80",
        "tcp",
        &[],
        "round_robin",
        one_backend(80),
    );
    let mut lb = t.start_balancer(&cfg, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    t.client.enter(|| {
        let mut open = keepalive(vip);
        lb.signal(libc::SIGTERM);
        lb.wait_for("stopping", 1, Duration::from_secs(5));
        // New connections are refused once the listener is closed.
        let deadline = Instant::now() + Duration::from_secs(2);
        while connect(vip, None).is_ok() {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The open one keeps working until the client ends it.
        get_on(&mut open);
        drop(open);
    });
    let status = lb
        .wait_timeout(Duration::from_secs(4))
        .expect("exited within the grace period");
    assert!(status.success(), "exit status {status}");
}
