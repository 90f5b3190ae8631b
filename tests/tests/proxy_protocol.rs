//! PROXY protocol headers read from listed peers: the client address a
//! header names is the one backends hear (X-Forwarded-For); a listed peer
//! without a valid header is closed unanswered and counted; a peer that is
//! not listed has no header read at all, so it cannot claim another
//! client's address.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    time::Duration,
};

use balancer_tests::{
    Topology,
    client::connect,
    echo::Echo,
    topology::{CLIENT4, VIP4, backend_addr},
};

/// Sends `bytes` to `port` from the client namespace; what came back.
fn exchange(t: &Topology, port: u16, bytes: &[u8]) -> String {
    t.client.enter(|| {
        let mut s = connect(SocketAddr::new(VIP4.into(), port), None).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(bytes).expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
}

const GET: &str = "GET / HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n";

/// A version 2 header for a TCP4 client `source` reaching the VIP.
fn v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&source);
    h.extend_from_slice(&VIP4.octets());
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

/// An `http` listener on port 80 that reads PROXY headers from the client
/// namespace's main address, and one on port 81 that reads them only from
/// 198.19.0.0/16 (not the client), both to the echo backend.
fn listed_and_unlisted() -> String {
    format!(
        "version: 1
shutdown_grace: 1s
listeners:
  - name: listed
    address: {VIP4}:80
    protocol: tcp
    mode: http
    pool: echo
    http: {{ header_timeout: 2s }}
    proxy_protocol: {{ accept_from: [\"{CLIENT4}/32\"] }}
  - name: unlisted
    address: {VIP4}:81
    protocol: tcp
    mode: http
    pool: echo
    proxy_protocol: {{ accept_from: [198.19.0.0/16] }}
pools:
  - {{ name: echo, backends: [{{ address: \"{}\" }}] }}
",
        backend_addr(0, 8080, false)
    )
}

#[test]
fn headers_from_listed_peers_name_the_client_and_others_cannot() {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let _lb = t.start_balancer(&listed_and_unlisted(), 2);
    let forwarded_for = || {
        let head = echo.heads().pop().expect("the backend saw a request");
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-forwarded-for")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };

    // curl's own version 1 header (its real address).
    let out = t.client.run(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            "--haproxy-protocol",
            &format!("http://{VIP4}:80/"),
        ],
    );
    assert!(!out.is_empty(), "curl --haproxy-protocol was not served");
    assert_eq!(forwarded_for(), CLIENT4.to_string());

    // A version 1 header naming another client, then a request split from
    // it in the same segment: the backend hears the named client.
    let v1 = format!("PROXY TCP4 203.0.113.9 {VIP4} 4444 80\r\n{GET}");
    let answer = exchange(&t, 80, v1.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(forwarded_for(), "203.0.113.9");

    // Version 2, the header alone in its own segment first.
    let answer = t.client.enter(|| {
        let mut s = connect(SocketAddr::new(VIP4.into(), 80), None).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let header = v2([203, 0, 113, 10], 5555);
        s.write_all(&header[..7]).expect("send");
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(&header[7..]).expect("send");
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(GET.as_bytes()).expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(forwarded_for(), "203.0.113.10");

    // A listed peer without a header, or with a broken one: closed, unanswered.
    let seen = echo.requests();
    assert_eq!(exchange(&t, 80, GET.as_bytes()), "");
    assert_eq!(exchange(&t, 80, b"PROXY TCP4 1.2.3.4\r\n"), "");
    assert_eq!(echo.requests(), seen, "nothing reached the backend");

    // A peer that is not listed: its header is not read, so it is a
    // malformed request line, and the backend never hears the claimed client.
    let answer = exchange(&t, 81, v1.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(echo.requests(), seen);

    let (code, status) = balancer_tests::admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200);
    let counters = &status["listeners"][0]["counters"];
    assert_eq!(counters["proxy_headers"], 3, "{counters}");
    assert_eq!(counters["proxy_refused"], 2, "{counters}");
}

#[test]
fn headers_are_sent_to_backends_that_want_them_with_the_real_client() {
    let t = Topology::new(1);
    let backend = backend_addr(0, 8081, false);
    let _nginx =
        balancer_tests::nginx::start_proxy_protocol(&t.backends[0], t.dir.path(), "pp", &[backend]);
    let yaml = format!(
        "version: 1
shutdown_grace: 1s
listeners:
  - {{ name: tcp-v1, address: \"{VIP4}:90\", protocol: tcp, mode: proxy, pool: v1 }}
  - {{ name: http-v2, address: \"{VIP4}:91\", protocol: tcp, mode: http, pool: v2 }}
  - name: chained
    address: {VIP4}:92
    protocol: tcp
    mode: proxy
    pool: v2
    proxy_protocol: {{ accept_from: [\"{CLIENT4}/32\"] }}
pools:
  - {{ name: v1, proxy_protocol: v1, backends: [{{ address: \"{backend}\" }}] }}
  - {{ name: v2, proxy_protocol: v2, backends: [{{ address: \"{backend}\" }}] }}
"
    );
    let _lb = t.start_balancer(&yaml, 3);
    let client = CLIENT4.to_string();
    for port in [90, 91, 91] {
        let out = t.client.run(
            "curl",
            &["-s", "--max-time", "5", &format!("http://{VIP4}:{port}/")],
        );
        assert_eq!(out.trim(), format!("pp {client}"), "port {port}");
    }
    // A header in, a header out: the backend hears the client named by
    // the proxy in front, not that proxy.
    let answer = exchange(
        &t,
        92,
        format!("PROXY TCP4 203.0.113.9 {VIP4} 4444 92\r\n{GET}").as_bytes(),
    );
    assert!(answer.ends_with("pp 203.0.113.9\n"), "{answer}");
}

#[test]
fn haproxy_in_front_with_send_proxy_v2_names_its_client() {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let _lb = t.start_balancer(&listed_and_unlisted(), 2);
    // HAProxy in the client namespace: it connects to the balancer from
    // the client's main address and names the real client, another
    // address of the namespace, in a version 2 header.
    let front = SocketAddr::new(CLIENT4.into(), 8400);
    let cfg = t.path("haproxy-front.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend front\n    bind {front}\n    default_backend lb\n\
             backend lb\n    server lb {VIP4}:80 send-proxy-v2\n"
        ),
    )
    .expect("write haproxy config");
    let mut cmd = t.client.command("haproxy");
    cmd.args(["-db", "-f", cfg.to_str().expect("utf-8")]);
    let _haproxy =
        balancer_tests::Process::spawn("haproxy front", cmd, t.path("haproxy-front.log"));
    balancer_tests::nginx::wait_listening(&t.client, &[front], Duration::from_secs(10));
    let real = t.add_client_addresses(1)[0];
    let out = t.client.run(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            "--interface",
            &real.to_string(),
            &format!("http://{front}/"),
        ],
    );
    assert!(!out.is_empty(), "not served through HAProxy");
    let head = echo.heads().pop().expect("the backend saw the request");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("x-forwarded-for: {real}")),
        "the backend should hear {real}: {head}"
    );
}
