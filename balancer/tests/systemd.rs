//! The systemd notification protocol without systemd: the test owns the
//! `NOTIFY_SOCKET` (and sets `WATCHDOG_USEC`), runs the daemon on loopback
//! and reads what it says, in order: `READY=1` once the listener accepts,
//! `RELOADING=1` then `READY=1` around a reload, `WATCHDOG=1` every half
//! period, `STOPPING=1` on SIGTERM.

use std::{
    net::{TcpListener, TcpStream},
    os::unix::net::UnixDatagram,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A daemon with one proxy listener on `port`, told to notify `socket`
/// with `env` besides.
fn daemon(dir: &std::path::Path, port: u16, socket: &std::path::Path, env: &[(&str, String)]) -> Child {
    let yaml = format!(
        "version: 1\nadmin: {{ listen: \"127.0.0.1:0\" }}\nstate_dir: {}\nshutdown_grace: 1s\nlisteners:\n  - {{ name: web, address: \"127.0.0.1:{port}\", protocol: tcp, mode: proxy, pool: p }}\npools:\n  - {{ name: p, backends: [{{ address: \"127.0.0.1:9\" }}] }}\n",
        dir.join("state").display()
    );
    let file = dir.join("c.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_balancer"));
    cmd.args(["run", "-c"])
        .arg(&file)
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn balancer")
}

/// The next message within `limit`, with when it arrived.
fn next(socket: &UnixDatagram, limit: Duration) -> Option<(Instant, String)> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            return Some((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    None
}

/// Messages until one contains `want`, within `limit`: those before it and
/// it.
fn until(socket: &UnixDatagram, want: &str, limit: Duration) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(m) = next(socket, deadline.saturating_duration_since(Instant::now())) {
        let done = m.1.lines().any(|l| l == want);
        seen.push(m);
        if done {
            return seen;
        }
    }
    panic!("no `{want}` within {limit:?}; saw {seen:?}");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn ready_reloading_watchdog_and_stopping_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let port = free_port();
    // A ping every 200 ms.
    let mut child = daemon(dir.path(), port, &path, &[("WATCHDOG_USEC", "400000".into())]);

    let first = until(&socket, "READY=1", Duration::from_secs(10));
    assert_eq!(first.len(), 1, "something came before READY: {first:?}");
    assert!(first[0].1.contains("STATUS=serving 1 listeners"), "{first:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "READY came before the listener accepted"
    );

    // Watchdog pings, at about half the period.
    let pings = until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    let mut at = vec![pings.last().expect("a ping").0];
    for _ in 0..5 {
        at.push(until(&socket, "WATCHDOG=1", Duration::from_secs(2)).last().expect("a ping").0);
    }
    for w in at.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(100) && gap <= Duration::from_millis(400),
            "pings {gap:?} apart (promised every 200 ms)"
        );
    }

    // A reload: RELOADING (with the monotonic clock), then READY again.
    signal(&child, "-HUP");
    let reload = until(&socket, "READY=1", Duration::from_secs(10));
    let states: Vec<&str> = reload
        .iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| !m.starts_with("WATCHDOG"))
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{states:?}"
    );
    assert!(states[1].contains("the last reload took effect"), "{states:?}");

    // Stopping.
    signal(&child, "-TERM");
    until(&socket, "STOPPING=1", Duration::from_secs(10));
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit}");
}

#[test]
fn the_watchdog_of_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut child = daemon(
        dir.path(),
        free_port(),
        &path,
        &[
            ("WATCHDOG_USEC", "200000".into()),
            ("WATCHDOG_PID", "1".into()),
        ],
    );
    until(&socket, "READY=1", Duration::from_secs(10));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(800);
    while let Some(m) = next(&socket, deadline.saturating_duration_since(Instant::now())) {
        seen.push(m.1);
    }
    assert!(seen.iter().all(|m| !m.contains("WATCHDOG")), "{seen:?}");
    signal(&child, "-TERM");
    let _ = child.wait();
}
