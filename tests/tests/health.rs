//! Health checks end to end, on the proxy plane: real nginx, socat and
//! Python backends are stopped and started again; the balancer's log says when it
//! took each out and brought it back, and the client's traffic shows where
//! new connections went meanwhile.

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use balancer_tests::{
    Process, Topology,
    client::http_get,
    config::simple,
    nginx,
    sys::{ms_between, now_of_day},
    topology::{VIP4, backend_addr},
};

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 100;
const RISE: u64 = 2;
const FALL: u64 = 2;

/// The bound: `fall x (interval + timeout) + 100 ms`.
const DOWN_WITHIN_MS: u64 = FALL * (INTERVAL_MS + TIMEOUT_MS) + 100;

fn health(kind: &str, extra: &str) -> String {
    format!(
        "    health: {{ kind: {kind}, interval: {INTERVAL_MS}ms, timeout: {TIMEOUT_MS}ms, jitter: 1ms, rise: {RISE}, fall: {FALL}, passive: false{extra} }}\n"
    )
}

fn config(protocol: &str, port: u16, algorithm: &str, health: &str) -> String {
    let backends = (0..3)
        .map(|i| (backend_addr(i, port, false).to_string(), 100))
        .collect();
    simple(
        "web",
        &format!("{VIP4}:{port}"),
        protocol,
        &[],
        algorithm,
        backends,
    )
    .replace(
        &format!("    algorithm: {algorithm}\n"),
        &format!("    algorithm: {algorithm}\n{health}"),
    )
}

/// Which backends answer 60 new connections.
fn answers(t: &Topology) -> Vec<String> {
    let vip: SocketAddr = (VIP4, 80).into();
    t.client.enter(|| {
        (0..60)
            .map(|i| http_get(vip, None).unwrap_or_else(|e| panic!("connection {i}: {e}")))
            .collect()
    })
}

#[test]
fn a_stopped_nginx_leaves_within_fall_checks_and_returns_after_rise() {
    let t = Topology::new(3);
    let mut servers = nginx::start_all(&t, 80, false);
    let lb = t.start_balancer(
        &config("tcp", 80, "round_robin", &health("http", ", path: /")),
        1,
    );
    assert!(answers(&t).contains(&"backend-2".to_owned()));

    // SIGTERM: nginx's fast shutdown takes its worker down too (SIGKILL
    // would leave the worker serving). It has stopped once the master exits.
    let mut stopped = servers.remove(1);
    stopped.signal(libc::SIGTERM);
    stopped
        .wait_timeout(Duration::from_secs(5))
        .expect("nginx exits");
    let killed = now_of_day();
    drop(stopped);
    let down = lb.logged_at(&["198.18.1.12:80", "to=down"], Duration::from_secs(5));
    let took = ms_between(killed, down);
    eprintln!("nginx stopped: down after {took:.0} ms");
    assert!(
        took <= DOWN_WITHIN_MS as f64,
        "down {took:.0} ms after the stop; the bound is {DOWN_WITHIN_MS} ms"
    );
    // From then on no new connection goes there: all 60 are served (by
    // the other two) with no attempt at the stopped one.
    let failures = |lb: &Process| lb.output().matches("backend connect failed").count();
    let before = failures(&lb);
    let after_down = answers(&t);
    assert!(
        !after_down.contains(&"backend-2".to_owned()),
        "{after_down:?}"
    );
    assert_eq!(
        failures(&lb),
        before,
        "a connection was still tried on the down backend"
    );

    let restarted = nginx::start(
        &t.backends[1],
        t.dir.path(),
        "backend-2",
        &[backend_addr(1, 80, false)],
    );
    let listening = now_of_day();
    let up = lb.logged_at(&["198.18.1.12:80", "to=up"], Duration::from_secs(5));
    let took = ms_between(listening, up);
    eprintln!("nginx listening again: up after {took:.0} ms");
    let bound = RISE * (INTERVAL_MS + TIMEOUT_MS) + 100;
    assert!(
        took <= bound as f64,
        "up {took:.0} ms after it listened; the bound is {bound} ms"
    );
    assert!(answers(&t).contains(&"backend-2".to_owned()));
    drop(restarted);
}

#[test]
fn a_stopped_udp_backend_leaves_within_fall_checks_and_returns_after_rise() {
    let t = Topology::new(3);
    let mut servers: Vec<Process> = (0..3).map(|i| t.udp_backend(i)).collect();
    let lb = t.start_balancer(
        &config(
            "udp",
            53,
            "round_robin",
            &health("udp", ", send: ping, expect: backend"),
        ),
        1,
    );
    let vip: SocketAddr = (VIP4, 53).into();
    let ask = |t: &Topology| -> Vec<String> {
        t.client.enter(|| {
            (0..30)
                .map(|i| {
                    let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                    s.set_read_timeout(Some(Duration::from_secs(2)))
                        .expect("timeout");
                    s.send_to(format!("q{i}").as_bytes(), vip).expect("send");
                    let mut buf = [0u8; 128];
                    let n = s.recv(&mut buf).unwrap_or(0);
                    String::from_utf8_lossy(&buf[..n])
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
    };
    assert!(ask(&t).contains(&"backend-2".to_owned()));
    let stopped = servers.remove(1);
    let killed = now_of_day();
    drop(stopped);
    let down = lb.logged_at(&["198.18.1.12:53", "to=down"], Duration::from_secs(5));
    let took = ms_between(killed, down);
    assert!(
        took <= DOWN_WITHIN_MS as f64,
        "down {took:.0} ms after the stop"
    );
    let answered = ask(&t);
    assert!(
        answered
            .iter()
            .all(|a| a == "backend-1" || a == "backend-3"),
        "every query answered by a live backend: {answered:?}"
    );
    let _again = t.udp_backend(1);
    let started = now_of_day();
    let up = lb.logged_at(&["198.18.1.12:53", "to=up"], Duration::from_secs(5));
    let bound = RISE * (INTERVAL_MS + TIMEOUT_MS) + 300;
    assert!(ms_between(started, up) <= bound as f64, "up too late");
    assert!(ask(&t).contains(&"backend-2".to_owned()));
}

/// How backend 2's stand-in misbehaves.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// Accepts and never answers.
    Hang,
    /// Accepts and resets at once.
    Reset,
    /// Answers something that is not HTTP.
    Garbage,
}

/// socat on backend 2 (index 1) at port 80, misbehaving as `how`.
fn bad_backend(t: &Topology, how: Bad) -> Process {
    let ip = backend_addr(1, 80, false).ip();
    let mut cmd = t.backends[1].command("socat");
    let (listen, action) = match how {
        Bad::Hang => (
            format!("TCP-LISTEN:80,bind={ip},fork,reuseaddr"),
            "SYSTEM:sleep 30",
        ),
        Bad::Reset => (
            format!("TCP-LISTEN:80,bind={ip},fork,reuseaddr,linger=0"),
            "SYSTEM:exit 0",
        ),
        Bad::Garbage => (
            format!("TCP-LISTEN:80,bind={ip},fork,reuseaddr"),
            "SYSTEM:echo SSH-2.0-not-http; sleep 1",
        ),
    };
    cmd.args([listen.as_str(), action]);
    let p = Process::spawn("socat", cmd, t.dir.path().join("bad.log"));
    std::thread::sleep(Duration::from_millis(300));
    p
}

/// nginx on backends 1 and 3, [`bad_backend`] on backend 2.
fn good_and_bad(t: &Topology, how: Bad) -> Vec<Process> {
    let mut all: Vec<Process> = [0, 2]
        .iter()
        .map(|&i| {
            nginx::start(
                &t.backends[i],
                t.dir.path(),
                &format!("backend-{}", i + 1),
                &[backend_addr(i, 80, false)],
            )
        })
        .collect();
    all.push(bad_backend(t, how));
    all
}

/// A backend that accepts and never answers fails its http checks by
/// timeout, one that resets or answers garbage fails them at once: each is
/// marked down, and checking them costs no descriptors.
#[test]
fn http_checks_take_down_a_hanging_a_resetting_and_a_garbage_backend_without_leaking() {
    for how in [Bad::Hang, Bad::Reset, Bad::Garbage] {
        let t = Topology::new(3);
        let _servers = good_and_bad(&t, how);
        let lb = t.start_balancer(&config("tcp", 80, "round_robin", &health("http", "")), 1);
        let _down = lb.logged_at(&["198.18.1.12:80", "to=down"], Duration::from_secs(5));
        let fds = balancer_tests::sys::open_fds(lb.pid());
        // Ten more failing checks.
        std::thread::sleep(Duration::from_millis(10 * INTERVAL_MS));
        let later = balancer_tests::sys::open_fds(lb.pid());
        assert!(
            later <= fds + 2,
            "descriptors grew from {fds} to {later} ({how:?})"
        );
        let served = answers(&t);
        assert!(served.iter().all(|a| a != "backend-2"), "{served:?}");
    }
}

/// A backend that accepts and resets, and one that accepts and never
/// answers, both pass a `tcp` check, so only the proxy sees them fail: with
/// `passive`, `fall` real failures (a reset; a client request met by
/// silence until the listener's idle timeout) take each down, and every
/// later connection is served.
#[test]
fn passive_health_takes_down_a_resetting_and_a_hanging_backend() {
    for how in [Bad::Reset, Bad::Hang] {
        let t = Topology::new(3);
        let _servers = good_and_bad(&t, how);
        let passive = "    health: { kind: tcp, interval: 10s, timeout: 1s, rise: 2, fall: 2, passive: true }\n";
        let yaml = config("tcp", 80, "round_robin", passive)
            .replace("    pool: p\n", "    pool: p\n    idle_timeout: 300ms\n");
        let lb = t.start_balancer(&yaml, 1);
        let vip: SocketAddr = (VIP4, 80).into();
        let failed = t
            .client
            .enter(|| (0..12).filter(|_| http_get(vip, None).is_err()).count());
        let _down = lb.logged_at(
            &["198.18.1.12:80", "to=down", "proxy saw"],
            Duration::from_secs(3),
        );
        assert!(failed >= 1, "the bad backend was never reached ({how:?})");
        let served = answers(&t);
        assert!(
            served.iter().all(|a| a != "backend-2"),
            "{how:?}: {served:?}"
        );
    }
}
