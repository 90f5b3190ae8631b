//! The systemd notification protocol without systemd: the test owns the
//! `NOTIFY_SOCKET` (and sets `WATCHDOG_USEC`), runs the daemon on loopback
//! and reads what it says, in order: `READY=1` once the listener accepts,
//! `RELOADING=1` then `READY=1` around a reload, `WATCHDOG=1` every half
//! period, `STOPPING=1` on SIGTERM.

mod common;
use common::{Daemon, free_port};

use std::{
    net::{TcpListener, TcpStream},
    os::unix::net::UnixDatagram,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A daemon with one proxy listener on `port`, told to notify `socket`
/// with `env` besides.
fn daemon(
    dir: &std::path::Path,
    port: u16,
    socket: &std::path::Path,
    env: &[(&str, String)],
) -> Daemon {
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
    Daemon(cmd.spawn().expect("spawn balancer"))
}

/// The notification socket a test owns in `dir`, as systemd would.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    (path, socket)
}

/// The next message within `limit`, with when it arrived.
fn next(socket: &UnixDatagram, limit: Duration) -> Option<(Instant, String)> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            return Some((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
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
    let (path, socket) = notify_socket(dir.path());
    let port = free_port();
    // A ping every 200 ms.
    let mut child = daemon(
        dir.path(),
        port,
        &path,
        &[("WATCHDOG_USEC", "400000".into())],
    );

    let first = until(&socket, "READY=1", Duration::from_secs(10));
    assert_eq!(first.len(), 1, "something came before READY: {first:?}");
    assert!(
        first[0].1.contains("STATUS=serving 1 listeners"),
        "{first:?}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "READY came before the listener accepted"
    );

    // Watchdog pings, at about half the period.
    let pings = until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    let mut at = vec![pings.last().expect("a ping").0];
    for _ in 0..5 {
        at.push(
            until(&socket, "WATCHDOG=1", Duration::from_secs(2))
                .last()
                .expect("a ping")
                .0,
        );
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
    assert!(
        states[1].contains("the last reload took effect"),
        "{states:?}"
    );

    // Stopping.
    signal(&child, "-TERM");
    until(&socket, "STOPPING=1", Duration::from_secs(10));
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit}");
}

#[test]
fn the_watchdog_of_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, socket) = notify_socket(dir.path());
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

/// Runs the daemon on `file` with `listener` passed as descriptor 3
/// named `web`, as systemd's socket activation does.
fn activated(file: &std::path::Path, listener: &TcpListener, log: &std::path::Path) -> Daemon {
    use std::os::{fd::AsRawFd as _, unix::process::CommandExt as _};
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    // `exec` keeps the shell's PID, which is what LISTEN_PID must name.
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec \"$0\" run -c \"$1\"",
        env!("CARGO_BIN_EXE_balancer"),
    ])
    .arg(file)
    .stdin(Stdio::null())
    .stderr(std::fs::File::create(log).expect("log"));
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork
    // and exec, on a descriptor the parent keeps open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Daemon(cmd.spawn().expect("spawn balancer"))
}

/// An echo backend on loopback: each connection gets back what it sends,
/// until it closes. Serves `connections` connections, then stops.
fn echo_backend(connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(connections) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = conn.try_clone().expect("clone");
                let _ = std::io::copy(&mut reader, &mut conn);
            });
        }
    });
    port
}

/// Sends `text` on `s` and reads the echo back.
fn echoed(s: &mut TcpStream, text: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(text.as_bytes())?;
    let mut buf = vec![0u8; text.len()];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[test]
fn socket_activation_queues_connections_across_a_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = echo_backend(64);
    // The socket systemd would hold: bound and listening before any daemon.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let yaml = format!(
        "version: 1\nadmin: {{ listen: \"127.0.0.1:0\" }}\nstate_dir: {}\nshutdown_grace: 1s\nlisteners:\n  - {{ name: web, address: \"127.0.0.1:{port}\", protocol: tcp, mode: proxy, pool: p }}\npools:\n  - {{ name: p, backends: [{{ address: \"127.0.0.1:{backend}\" }}] }}\n",
        dir.path().join("state").display()
    );
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let log = dir.path().join("log");
    let mut lb = activated(&file, &listener, &log);
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving an inherited listening socket")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon did not take the socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut first = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    assert_eq!(echoed(&mut first, "before").expect("served"), "before");
    // Status says how the daemon started.
    let status = dir.path().join("state").join("status.json");
    while !status.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no status snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&status).expect("status");
    assert!(
        text.contains("socket-activated (1 listening socket from systemd)"),
        "{text}"
    );

    // kill -9: connections arriving now wait in the socket's queue.
    lb.kill().expect("kill -9");
    let _ = lb.wait();
    let mut waiting: Vec<TcpStream> = (0..20)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i} refused: {e}"))
        })
        .collect();
    let mut lb = activated(&file, &listener, &dir.path().join("log2"));
    for (i, s) in waiting.iter_mut().enumerate() {
        let text = format!("queued {i}");
        assert_eq!(
            echoed(s, &text).unwrap_or_else(|e| panic!("connection {i}: {e}")),
            text
        );
    }
    // The connection the killed process held is gone with it.
    assert!(echoed(&mut first, "after").is_err());
    signal(&lb, "-TERM");
    let _ = lb.wait();
}

/// A process killed by pid when dropped: the successor the test did not
/// spawn itself.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// The upgrade path under systemd: SIGUSR2 makes the daemon start its
/// successor (the binary at its own path, with its arguments and
/// `--upgrade`), which takes the sockets over and reports itself as the
/// main process with its readiness; the old one exits without saying
/// STOPPING (the service goes on), and the new one pings the watchdog.
#[test]
fn sigusr2_starts_a_successor_that_reports_itself_as_the_main_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, socket) = notify_socket(dir.path());
    let port = free_port();
    let mut old = daemon(
        dir.path(),
        port,
        &path,
        &[("WATCHDOG_USEC", "400000".into())],
    );
    until(&socket, "READY=1", Duration::from_secs(10));
    signal(&old, "-USR2");
    let took_over = until(&socket, "READY=1", Duration::from_secs(20));
    let (_, message) = took_over.last().expect("the successor's readiness");
    let new_pid: u32 = message
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no MAINPID beside READY: {took_over:?}"));
    let _new = KillOnDrop(new_pid);
    assert_ne!(new_pid, old.id());
    let exit = old.wait().expect("wait for the old daemon");
    assert!(exit.success(), "{exit}");

    // The snapshot is the new daemon's within its second.
    let said = format!("upgraded from pid {}", old.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = std::fs::read_to_string(dir.path().join("state").join("status.json"))
            .unwrap_or_default();
        if status.contains(&said) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.contains(&said), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    // The old one said no STOPPING; the new one pings the watchdog.
    let after = until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    assert!(
        took_over
            .iter()
            .chain(&after)
            .all(|(_, m)| !m.contains("STOPPING")),
        "{took_over:?} {after:?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &new_pid.to_string()])
        .status();
    until(&socket, "STOPPING=1", Duration::from_secs(10));
}
