//! The TCP proxy's two engines, `splice` and `sockmap`, through the same
//! cases with real peers: half-close both ways (socat, python), a 1 GiB
//! transfer each way with matching sha256, byte counters equal to what each
//! side sent, a backend killed mid-stream, and the idle timeout. Each case
//! runs once per engine; for `sockmap` the listener's counters also prove
//! the relay, not the splice fallback, carried the connections.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology, admin,
    config::{one_to_one, simple},
    nginx,
    topology::{VIP4, backend_addr, random_file},
};

/// `cfg` with every proxy listener moving bytes with `engine`.
fn with_engine(cfg: &str, engine: &str) -> String {
    cfg.replace(
        "    mode: proxy\n",
        &format!("    mode: proxy\n    proxy_engine: {engine}\n"),
    )
}

/// Starts socat in backend 0 listening on `port` and running `script` per
/// connection; waits until it listens.
fn socat_backend(t: &Topology, port: u16, script: &str) -> Process {
    let mut cmd = t.backends[0].command("socat");
    cmd.args([
        "-t",
        "10",
        &format!(
            "TCP-LISTEN:{port},bind={},reuseaddr,fork",
            backend_addr(0, port, false).ip()
        ),
        // `pipes`: separate stdin and stdout, so a script that closes its
        // stdout half-closes the connection.
        &format!("SYSTEM:{script},pipes"),
    ]);
    let p = Process::spawn("socat backend", cmd, t.path(&format!("socat-{port}.log")));
    nginx::wait_listening(
        &t.backends[0],
        &[backend_addr(0, port, false)],
        Duration::from_secs(5),
    );
    p
}

/// Starts a python server in backend 0 (`script` gets `s`, a listening
/// socket on `port`); waits for it to say `ready`.
fn python_backend(t: &Topology, port: u16, script: &str) -> Process {
    let ip = backend_addr(0, port, false).ip();
    let full = format!(
        "import socket,time\ns=socket.create_server(('{ip}',{port}))\nprint('ready',flush=True)\n{script}"
    );
    let mut py = t.backends[0].command("python3");
    py.args(["-c", &full]);
    let mut p = Process::spawn("python backend", py, t.path(&format!("py-{port}.log")));
    // Not a connect probe: a probe could take the one connection a script
    // serves.
    p.wait_for("ready", 1, Duration::from_secs(5));
    p
}

/// `(bytes_in, bytes_out)` of pool `pool`'s first backend, from `/status`.
fn backend_bytes(t: &Topology, pool: &str) -> (u64, u64) {
    let (code, status) = admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    let pools = status["pools"].as_array().expect("pools");
    let p = pools
        .iter()
        .find(|p| p["name"] == pool)
        .unwrap_or_else(|| panic!("no pool {pool} in {status}"));
    let b = &p["backends"][0];
    (
        b["bytes_in"].as_u64().expect("bytes_in"),
        b["bytes_out"].as_u64().expect("bytes_out"),
    )
}

/// Listener `listener`'s counter `key`, from `/status`.
fn listener_counter(t: &Topology, listener: &str, key: &str) -> u64 {
    let (code, status) = admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    let listeners = status["listeners"].as_array().expect("listeners");
    let l = listeners
        .iter()
        .find(|l| l["name"] == listener)
        .unwrap_or_else(|| panic!("no listener {listener} in {status}"));
    l["counters"][key].as_u64().unwrap_or(0)
}

/// Waits until pool `pool` has counted exactly `want` bytes (in, out):
/// counters may be added when the connection ends, just after the client
/// saw its end.
fn expect_bytes(t: &Topology, pool: &str, want: (u64, u64)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = backend_bytes(t, pool);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pool {pool}: counted {got:?} bytes (in, out), clients and backend sent {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// For `sockmap`: the relay carried `relayed` of `listener`'s connections
/// and none fell back to splice.
fn expect_relayed(t: &Topology, engine: &str, listener: &str, relayed: u64) {
    if engine != "sockmap" {
        return;
    }
    assert_eq!(
        listener_counter(t, listener, "sockmap_relayed"),
        relayed,
        "listener {listener}: connections the relay carried"
    );
    assert_eq!(
        listener_counter(t, listener, "sockmap_spliced"),
        0,
        "listener {listener}: connections spliced instead"
    );
}

fn half_close(engine: &str) {
    let t = Topology::new(1);
    let got = t.path("late-data");
    let _a = socat_backend(&t, 7000, "wc -c; echo after-eof");
    // A backend that says hello, shuts down its write side at once, then
    // stores whatever the client sends afterwards.
    let script = format!(
        "while True:\n    c,_=s.accept()\n    c.sendall(b'hello\\n')\n    c.shutdown(socket.SHUT_WR)\n\
         \x20   d=b''\n    while True:\n        x=c.recv(65536)\n        if not x: break\n        d+=x\n\
         \x20   if d: open('{}','wb').write(d)\n",
        got.display()
    );
    let _b = python_backend(&t, 7001, &script);
    let cfg = one_to_one(&[
        (
            "a",
            "198.18.0.10:7000",
            backend_addr(0, 7000, false).to_string(),
        ),
        (
            "b",
            "198.18.0.10:7001",
            backend_addr(0, 7001, false).to_string(),
        ),
    ]);
    let _lb = t.start_balancer(&with_engine(&cfg, engine), 2);

    // Client -> backend FIN: the client (socat) sends 3 bytes and shuts down
    // its write side; the backend only answers once it has seen that EOF.
    // First at once (the FIN may reach the balancer before it relays the
    // connection), then a moment after connecting.
    for client in [
        "printf abc | socat -t 5 - TCP:198.18.0.10:7000",
        "(sleep 0.3; printf abc) | socat -t 5 - TCP:198.18.0.10:7000",
    ] {
        let out = t.client.run("sh", &["-c", client]);
        assert_eq!(out, "3\nafter-eof\n", "{client}");
    }
    expect_bytes(&t, "a", (6, 24));
    if engine == "sockmap" {
        // The second connection at least was open when the relay took it.
        assert!(listener_counter(&t, "a", "sockmap_relayed") >= 1);
    }

    // Backend -> client FIN: the backend says hello and closes its write
    // side; the client (socat) sees EOF, keeps sending a second later, and
    // the backend must still receive it.
    let out = t.client.run(
        "sh",
        &[
            "-c",
            "(sleep 1; printf late-data) | socat -t 10 - TCP:198.18.0.10:7001",
        ],
    );
    assert_eq!(out, "hello\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&got).unwrap_or_default() != "late-data" {
        assert!(
            Instant::now() < deadline,
            "backend never got the data sent after its FIN"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_bytes(&t, "b", (9, 6));
    expect_relayed(&t, engine, "b", 1);
}

#[test]
fn half_close_is_forwarded_both_ways_by_splice() {
    half_close("splice");
}

#[test]
fn half_close_is_forwarded_both_ways_by_sockmap() {
    half_close("sockmap");
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn one_gib_each_way(engine: &str) {
    let t = Topology::new(1);
    let size: u64 = 1 << 30;
    let blob = random_file(t.dir.path(), "blob", size);
    let want = sha256(&blob);
    let received = t.path("received.sha");
    let _up = socat_backend(&t, 7002, &format!("sha256sum > {}", received.display()));
    let _nginx = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "backend-1",
        &[backend_addr(0, 80, false)],
    );
    let cfg = one_to_one(&[
        (
            "up",
            "198.18.0.10:7002",
            backend_addr(0, 7002, false).to_string(),
        ),
        (
            "down",
            "198.18.0.10:80",
            backend_addr(0, 80, false).to_string(),
        ),
    ]);
    let _lb = t.start_balancer(&with_engine(&cfg, engine), 2);

    // Upload through the proxy; the backend hashes what it received.
    let _ = t.client.run(
        "socat",
        &[
            "-u",
            &format!("OPEN:{}", blob.display()),
            "TCP:198.18.0.10:7002",
        ],
    );
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let got = std::fs::read_to_string(&received).unwrap_or_default();
        if let Some(h) = got.split_whitespace().next() {
            assert_eq!(h, want, "upload: sha256 differs");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend never finished hashing the upload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_bytes(&t, "up", (size, 0));
    // Download through the proxy from nginx.
    let down = t.client.run(
        "sh",
        &[
            "-c",
            "curl -sS --max-time 90 http://198.18.0.10/files/blob | sha256sum",
        ],
    );
    assert_eq!(
        down.split_whitespace().next().unwrap_or_default(),
        want,
        "download: sha256 differs"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend_bytes(&t, "down").1 < size {
        assert!(Instant::now() < deadline, "download bytes not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_relayed(&t, engine, "up", 1);
    expect_relayed(&t, engine, "down", 1);
}

#[test]
fn one_gib_each_way_arrives_intact_by_splice() {
    one_gib_each_way("splice");
}

#[test]
fn one_gib_each_way_arrives_intact_by_sockmap() {
    one_gib_each_way("sockmap");
}

/// Reads from `s` until it ends; how it ended (`Ok(total)` at EOF, the
/// error at a reset), or a panic if it is still open after `within`.
fn read_to_end_within(s: &mut TcpStream, within: Duration) -> Result<usize, ErrorKind> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.kind()),
        }
        assert!(Instant::now() < deadline, "the connection is still open");
    }
}

fn killed_backend(engine: &str) {
    let t = Topology::new(1);
    // Streams to each client without reading it: what the client sent
    // stays unread, so the kernel resets the connection when it dies.
    let _b = python_backend(
        &t,
        7003,
        "c,_=s.accept()\nwhile True:\n    c.sendall(b'x'*65536)\n",
    );
    let cfg = simple(
        "stream",
        "198.18.0.10:7003",
        "tcp",
        &[],
        "round_robin",
        vec![(backend_addr(0, 7003, false).to_string(), 100)],
    );
    let _lb = t.start_balancer(&with_engine(&cfg, engine), 1);
    let vip: SocketAddr = (VIP4, 7003).into();
    t.client.enter(|| {
        let mut s = TcpStream::connect(vip).expect("connect");
        s.write_all(&[b'q'; 4096]).expect("send");
        // Mid-stream: well into the backend's data.
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < 8 << 20 {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed before the backend was killed");
            got += n;
        }
        t.backends[0].kill_all();
        // The client learns at once, by a reset (or a FIN once the bytes
        // still on their way are read), not after some timeout.
        let ended = read_to_end_within(&mut s, Duration::from_secs(5));
        assert!(
            matches!(ended, Ok(_) | Err(ErrorKind::ConnectionReset)),
            "{ended:?}"
        );
    });
    // And the balancer has let go of it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, status) = admin::call(&t.lb, "GET", "/status", None);
        if status["pools"][0]["backends"][0]["active"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still active: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_relayed(&t, engine, "stream", 1);
}

#[test]
fn a_backend_killed_mid_stream_ends_the_client_connection_by_splice() {
    killed_backend("splice");
}

#[test]
fn a_backend_killed_mid_stream_ends_the_client_connection_by_sockmap() {
    killed_backend("sockmap");
}

fn idle_timeout(engine: &str) {
    let t = Topology::new(1);
    let _echo = socat_backend(&t, 7004, "cat");
    let cfg = simple(
        "echo",
        "198.18.0.10:7004",
        "tcp",
        &["idle_timeout: 1s"],
        "round_robin",
        vec![(backend_addr(0, 7004, false).to_string(), 100)],
    );
    let _lb = t.start_balancer(&with_engine(&cfg, engine), 1);
    let vip: SocketAddr = (VIP4, 7004).into();
    let echo = |s: &mut TcpStream, b: u8| {
        s.write_all(&[b]).expect("send");
        let mut one = [0u8; 1];
        s.read_exact(&mut one).expect("echo");
        assert_eq!(one[0], b);
    };
    t.client.enter(|| {
        let mut busy = TcpStream::connect(vip).expect("connect");
        busy.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut quiet = TcpStream::connect(vip).expect("connect");
        quiet
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        echo(&mut quiet, b'q');
        let quiet_since = Instant::now();
        quiet.set_nonblocking(true).expect("nonblocking");
        let mut closed_after = None;
        // A byte each way every 100 ms for 3 s: never idle for 1 s; the
        // quiet one is looked at between them.
        for i in 0..30u8 {
            echo(&mut busy, b'a' + i);
            let mut one = [0u8; 1];
            if closed_after.is_none() && matches!(quiet.read(&mut one), Ok(0)) {
                closed_after = Some(quiet_since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The quiet one was closed about 1 s after its last byte.
        let closed_after = closed_after.expect("the quiet connection is still open after 3 s");
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(2500)).contains(&closed_after),
            "closed {closed_after:?} after its last byte, with idle_timeout 1s"
        );
        echo(&mut busy, b'z');
    });
    expect_bytes(&t, "p", (32, 32));
}

#[test]
fn idle_connections_are_closed_and_busy_ones_kept_by_splice() {
    idle_timeout("splice");
}

#[test]
fn idle_connections_are_closed_and_busy_ones_kept_by_sockmap() {
    idle_timeout("sockmap");
}
