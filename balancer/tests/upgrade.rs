//! `balancer run --upgrade` on loopback: rounds of a new daemon taking the
//! listening sockets of the running one (a TCP proxy listener, an HTTP
//! listener and a UDP listener) while clients keep making requests through
//! all three (the UDP ones on sessions kept throughout). No
//! request may fail and no connection be refused; each old daemon exits on
//! its own within `shutdown_grace`; an upgrade with an invalid config is
//! refused and the running daemon serves on.

mod common;
use common::{Daemon, free_port};

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

const ROUNDS: usize = 20;
const GRACE_S: u64 = 2;

/// A tiny HTTP backend: every request gets `200 ok` and a close. Stops
/// when `stop` is set (it polls).
fn backend(stop: &'static AtomicBool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// A UDP echo backend: every datagram goes back to its sender. Stops when
/// `stop` is set (it polls).
fn udp_echo(stop: &'static AtomicBool) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp backend");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    port
}

/// Request and answer on UDP `sessions` (client sockets kept throughout)
/// to `port` until `done`: counts answers and requests whose answer did
/// not come within a second.
fn udp_load(port: u16, done: &AtomicBool, answered: &AtomicU64, lost: &AtomicU64) {
    let sessions: Vec<UdpSocket> = (0..4)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp client");
            s.connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            s
        })
        .collect();
    let started = Instant::now();
    let mut n = 0u64;
    while !done.load(Ordering::Relaxed) && started.elapsed() < Duration::from_mins(5) {
        for s in &sessions {
            n += 1;
            let ask = n.to_string();
            let _ = s.send(ask.as_bytes());
            let mut buf = [0u8; 64];
            // A late answer to an earlier request is skipped.
            let got = loop {
                match s.recv(&mut buf) {
                    Ok(k) if buf[..k] == *ask.as_bytes() => break true,
                    Ok(_) => {}
                    Err(_) => break false,
                }
            };
            let counter = if got { answered } else { lost };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One request on a new connection to `port`: whether `200 ok` came back.
fn get(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: upgrade.test\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"ok")
}

fn spawn(file: &Path, upgrade: bool, log: &Path) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_balancer"));
    cmd.arg("run");
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.arg("-c")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    Daemon(cmd.spawn().expect("spawn balancer"))
}

fn wait_exit(Daemon(child): &mut Daemon, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn upgrades_under_load_fail_no_request_and_the_old_daemon_drains_and_exits() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = backend(&STOP);
    let echo = udp_echo(&STOP);
    let (tcp, http, udp) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "version: 1\nadmin: {{ listen: \"127.0.0.1:0\" }}\nstate_dir: {}\nshutdown_grace: {GRACE_S}s\nlisteners:\n  - {{ name: tcp, address: \"127.0.0.1:{tcp}\", protocol: tcp, mode: proxy, pool: p }}\n  - {{ name: web, address: \"127.0.0.1:{http}\", protocol: tcp, mode: http, pool: p }}\n  - {{ name: dns, address: \"127.0.0.1:{udp}\", protocol: udp, mode: proxy, pool: u, idle_timeout: 1s }}\npools:\n  - {{ name: p, backends: [{{ address: \"127.0.0.1:{backend}\" }}] }}\n  - {{ name: u, backends: [{{ address: \"127.0.0.1:{echo}\" }}] }}\n",
        dir.path().join("state").display()
    );
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, &yaml).expect("write config");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, yaml.replace("mode: proxy", "mode: sideways")).expect("write bad");

    let mut old = spawn(&file, false, &dir.path().join("log0"));
    let start = Instant::now();
    while !(get(tcp) && get(http)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first daemon never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let (answered, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| udp_load(udp, &done, &answered, &lost));
        s.spawn(|| {
            let started = Instant::now();
            while !done.load(Ordering::Relaxed) && started.elapsed() < Duration::from_mins(5) {
                for port in [tcp, http] {
                    let counter = if get(port) { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for round in 1..=ROUNDS {
            // Requests between upgrades too, not only across them.
            std::thread::sleep(Duration::from_millis(100));
            let mut new = spawn(&file, true, &dir.path().join(format!("log{round}")));
            let began = Instant::now();
            let Some(exit) = wait_exit(&mut old, Duration::from_secs(GRACE_S + 10)) else {
                done.store(true, Ordering::Relaxed);
                let log = std::fs::read_to_string(dir.path().join(format!("log{round}")))
                    .unwrap_or_default();
                panic!("round {round}: the old daemon did not exit; the new one logged:\n{log}");
            };
            assert!(
                exit.success(),
                "round {round}: the old daemon exited with {exit}"
            );
            assert!(
                began.elapsed() < Duration::from_secs(GRACE_S + 5),
                "round {round}: the old daemon took {:?}",
                began.elapsed()
            );
            assert!(
                matches!(new.0.try_wait(), Ok(None)),
                "round {round}: the new daemon is not running"
            );
            old = new;
        }
        // An invalid config refuses the upgrade; the running daemon serves on.
        let mut refused = spawn(&bad, true, &dir.path().join("log-bad"));
        let exit = wait_exit(&mut refused, Duration::from_secs(10)).expect("refused upgrade exits");
        assert!(!exit.success());
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            matches!(old.0.try_wait(), Ok(None)),
            "the running daemon stopped"
        );
        done.store(true, Ordering::Relaxed);
    });
    let state =
        std::fs::read_to_string(dir.path().join("state").join("status.json")).expect("status");
    assert!(state.contains("upgraded from pid"), "{state}");
    let _ = Command::new("kill")
        .args(["-TERM", &old.0.id().to_string()])
        .status();
    let _ = wait_exit(&mut old, Duration::from_secs(10));
    STOP.store(true, Ordering::Relaxed);
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let (answered, lost) = (
        answered.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
    );
    eprintln!(
        "{ROUNDS} upgrades: {ok} requests served, {failed} failed; UDP {answered} answered, {lost} lost"
    );
    assert_eq!(failed, 0, "requests failed across upgrades");
    assert!(ok > 100, "{ok} requests");
    assert_eq!(lost, 0, "UDP answers lost across upgrades");
    assert!(answered > 100, "{answered} UDP answers");
}
