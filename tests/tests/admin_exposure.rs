//! How much of the admin API is exposed, end to end: `/metrics` alone
//! without the token when `public_metrics` says so, request bodies refused,
//! open connections and requests per second bounded, and a public address
//! without a token refused before anything starts.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use balancer_tests::{Topology, config::web_on_backend0, nginx};

const TOKEN: &str = "0pen-sesame";
const ADMIN: &str = "127.0.0.1:9900";
/// The admin API's bounds (`balancer/src/admin/gate.rs`).
const MAX_CONNECTIONS: usize = 64;
const BURST: usize = 400;

/// One TCP listener over backend 0, with `admin` as the admin section.
fn with_admin(admin: &str) -> String {
    web_on_backend0().replace("version: 1\n", &format!("version: 1\nadmin: {admin}\n"))
}

/// A balancer whose admin API has a token and serves `/metrics` publicly.
fn start(t: &Topology) -> balancer_tests::Process {
    let token = t.dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let cfg = with_admin(&format!(
        "{{ listen: {ADMIN}, token_file: {}, public_metrics: true }}",
        token.display()
    ));
    let mut lb = t.start_balancer(&cfg, 1);
    lb.wait_for("admin API listening", 1, Duration::from_secs(5));
    lb
}

/// `curl` in the balancer's namespace with `args`; the HTTP status.
fn curl_status(t: &Topology, args: &[&str]) -> u16 {
    let mut all = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ];
    all.extend_from_slice(args);
    let out = t.lb.run("curl", &all);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no status in {out}"))
}

#[test]
fn only_metrics_is_public_and_bodies_are_refused() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    let url = |p: &str| format!("http://{ADMIN}{p}");
    let auth = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(curl_status(&t, &[&url("/metrics")]), 200);
    assert_eq!(curl_status(&t, &[&url("/status")]), 401);
    assert_eq!(curl_status(&t, &["-X", "POST", &url("/metrics")]), 401);
    assert_eq!(
        curl_status(
            &t,
            &["-H", "Authorization: Bearer 0pen-sesamE", &url("/status")]
        ),
        401
    );
    assert_eq!(curl_status(&t, &["-H", &auth, &url("/status")]), 200);
    // Actions are in the method and path; a body is refused unread.
    assert_eq!(
        curl_status(
            &t,
            &["-H", &auth, "-X", "POST", "-d", "x=1", &url("/reload")]
        ),
        413
    );
}

/// One keep-alive `GET /metrics` on `s`; its status.
fn get(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(n > 0, "closed mid-answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    head.get(9..12)
        .and_then(|c| c.parse().ok())
        .expect("status code")
}

#[test]
fn admin_connections_and_requests_are_bounded() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    t.lb.enter(|| {
        let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(ADMIN).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // One past the bound is accepted by the kernel and closed at once.
        let mut extra = TcpStream::connect(ADMIN).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
        let mut buf = [0u8; 64];
        assert!(
            matches!(extra.read(&mut buf), Ok(0) | Err(_)),
            "connection {} got an answer",
            MAX_CONNECTIONS + 1
        );
        // Closing the held ones frees their places.
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let mut s = TcpStream::connect(ADMIN).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        assert_eq!(get(&mut s), 200, "a freed place is usable");
        // A burst far past the bucket: the rest are refused with 429, the
        // first ones served.
        let statuses: Vec<u16> = (0..3 * BURST).map(|_| get(&mut s)).collect();
        let ok = statuses.iter().filter(|c| **c == 200).count();
        let limited = statuses.iter().filter(|c| **c == 429).count();
        assert_eq!(ok + limited, statuses.len(), "{statuses:?}");
        assert!(ok >= BURST - 1, "{ok} served");
        assert!(limited > 0, "no request was limited");
        // The bucket refills.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(get(&mut s), 200);
    });
}

#[test]
fn a_public_admin_address_without_a_token_stops_the_start() {
    let t = Topology::new(1);
    let cfg = with_admin("{ listen: 0.0.0.0:9900 }");
    balancer_tests::write_config(t.dir.path(), &cfg);
    let config = t.dir.path().join("balancer.yaml");
    let out =
        t.lb.command(balancer_tests::balancer_bin().to_str().expect("utf-8"))
            .args(["run", "-c", config.to_str().expect("utf-8")])
            .output()
            .expect("run");
    assert!(
        !out.status.success(),
        "started with a public admin API and no token"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.listen") && err.contains("token_file") && err.contains("insecure"),
        "{err}"
    );
}
