//! SYN cookies answered from XDP, end to end in namespaces: a proxy
//! listener with `syn_cookies_above: 1` on the balancer's own address.
//! Beyond one SYN a second, the XDP program answers each SYN itself, so
//! the listening socket first hears of the connection at the handshake's
//! ACK; every connection must still complete and carry a request, the
//! kernel must count the cookies it validated, and the window scale the
//! client was told must be the one the kernel's socket uses.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use balancer_tests::{
    admin,
    bpffs::BpfFs,
    client::{KeepAlive, http_get},
    l2::{L2, backend},
    nginx,
};

/// The balancer's own address on the segment.
const LB: [u8; 4] = [198, 18, 0, 2];
const CONNECTIONS: u64 = 30;

fn config(pin_dir: &std::path::Path) -> String {
    format!(
        "version: 1
listeners:
  - name: web
    address: 198.18.0.2:8080
    protocol: tcp
    mode: proxy
    pool: web
    guard: {{ syn_cookies_above: 1 }}
pools:
  - name: web
    algorithm: round_robin
    backends: [{{ address: \"{}:80\" }}]
xdp: {{ interface: eth0, forwarding: dsr, pin_dir: \"{}\" }}
",
        backend(0),
        pin_dir.display()
    )
}

/// One counter of the XDP program, from the daemon's status.
fn xdp_counter(t: &L2, name: &str) -> u64 {
    let (code, status) = admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    status["xdp"]["counters"][name].as_u64().unwrap_or(0)
}

/// `TcpExt` counter `name` of the balancer's namespace.
fn tcp_ext(t: &L2, name: &str) -> u64 {
    let text = t.lb.run("cat", &["/proc/net/netstat"]);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        panic!("no TcpExt in {text}");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {names}"))
}

/// The `wscale:SND,RCV` pairs `ss` shows for established connections on
/// port 8080 in `ns`.
fn wscales(ns: &balancer_tests::Netns, filter: &str) -> Vec<(u8, u8)> {
    let out = ns.run("ss", &["-tniH", "state", "established", filter]);
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix("wscale:"))
        .filter_map(|p| {
            let (s, r) = p.split_once(',')?;
            Some((s.parse().ok()?, r.parse().ok()?))
        })
        .collect()
}

#[test]
fn syns_answered_from_xdp_become_real_connections() {
    let t = L2::new(1);
    t.lb.sysctl("net.ipv4.tcp_syncookies", "2");
    t.lb.sysctl("net.ipv4.tcp_timestamps", "2");
    let _nginx = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "backend-1",
        &[SocketAddr::new(IpAddr::V4(backend(0)), 80)],
    );
    let fs = BpfFs::new();
    let _lb = t.start_balancer(&config(&fs.path().join("lb")), 1);
    let listener = SocketAddr::from((LB, 8080));

    let validated = tcp_ext(&t, "SyncookiesRecv");
    let answered = xdp_counter(&t, "syn_cookie");
    t.client.enter(|| {
        for i in 0..CONNECTIONS {
            let body = http_get(listener, None).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            assert_eq!(body, "backend-1");
        }
    });
    // The status file is written once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let by_xdp = xdp_counter(&t, "syn_cookie") - answered;
    assert!(
        by_xdp >= CONNECTIONS / 2,
        "only {by_xdp} of {CONNECTIONS} SYNs were answered from XDP"
    );
    let by_kernel = tcp_ext(&t, "SyncookiesRecv") - validated;
    eprintln!("cookies: {by_xdp} answered from XDP, {by_kernel} validated by the kernel");
    assert!(
        by_kernel >= by_xdp,
        "the kernel validated {by_kernel} cookie ACKs for {by_xdp} XDP cookies"
    );

    // A connection opened in a burst gets an XDP cookie; the window scale
    // the client was told is the one the server's socket uses.
    let before = xdp_counter(&t, "syn_cookie");
    let mut held = t.client.enter(|| {
        for _ in 0..3 {
            let _ = http_get(listener, None);
        }
        KeepAlive::open(listener).expect("connect")
    });
    held.get().expect("request on the held connection");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(xdp_counter(&t, "syn_cookie") >= before + 3);
    let client_side = wscales(&t.client, "( dport = :8080 )");
    let server_side = wscales(&t.lb, "( sport = :8080 )");
    eprintln!("wscale client {client_side:?} server {server_side:?}");
    assert_eq!(client_side.len(), 1, "{client_side:?}");
    assert_eq!(server_side.len(), 1, "{server_side:?}");
    assert_eq!(
        client_side[0].0, server_side[0].1,
        "the client scales our window by what the server's socket uses"
    );
    assert_eq!(client_side[0].1, server_side[0].0);
    held.get().expect("second request on the held connection");
}
