//! The HTTP layer end to end: curl in the client namespace, nginx and a
//! recording echo backend behind, the real balancer between. Each matcher
//! reaches its pool, fixed answers and redirects come from the balancer,
//! forwarded requests carry `X-Forwarded-*` and lose their hop-by-hop
//! headers, backend connections are kept alive, a canary split keeps its
//! weights, h2c works from clients and to backends, and every status the
//! layer answers itself appears when it should.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology,
    client::{KeepAlive, connect, curl},
    echo::Echo,
    nginx,
    topology::{VIP4, backend_addr},
};

/// The pools `b1`, `b2` and `b3`, one nginx backend each.
const POOLS: &str = "pools:
  - { name: b1, backends: [{ address: \"198.18.1.11:80\" }] }
  - { name: b2, backends: [{ address: \"198.18.1.12:80\" }] }
  - { name: b3, backends: [{ address: \"198.18.1.13:80\" }] }
";

#[test]
fn each_matcher_reaches_its_pool_and_fixed_answers_come_from_the_balancer() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let yaml = format!(
        "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: b3
    routes:
      - {{ name: host, match: {{ host: api.example.test }}, pool: b1 }}
      - {{ name: wild, match: {{ host: \"*.shop.test\" }}, pool: b2 }}
      - {{ name: exact, match: {{ path: /login }}, pool: b1 }}
      - {{ name: prefix, match: {{ path_prefix: /static }}, pool: b2 }}
      - {{ name: regex, match: {{ path_regex: \"^/u/[0-9]+$\" }}, pool: b1 }}
      - {{ name: method, match: {{ methods: [DELETE] }}, pool: b2 }}
      - {{ name: header, match: {{ headers: {{ x-canary: \"1\" }} }}, pool: b1 }}
      - {{ name: deny, match: {{ path_prefix: /admin }}, answer: {{ status: 403, body: \"forbidden here\\n\" }} }}
      - {{ name: https, match: {{ host: secure.test }}, redirect: {{ scheme: https, status: 308 }} }}
  - name: strict
    address: 198.18.0.10:81
    protocol: tcp
    mode: http
    routes:
      - {{ match: {{ path: /only }}, pool: b1 }}
{POOLS}"
    );
    let _lb = t.start_balancer(&yaml, 2);
    let base = "http://198.18.0.10";
    let cases: [(&[&str], &str, &str); 12] = [
        (&["-H", "Host: api.example.test"], "/", "backend-1"),
        (&["-H", "Host: API.Example.Test:80"], "/", "backend-1"),
        (&["-H", "Host: www.shop.test"], "/", "backend-2"),
        (&["-H", "Host: shop.test"], "/", "backend-3"),
        (&[], "/login", "backend-1"),
        (&[], "/login/x", "backend-3"),
        (&[], "/static/app.js", "backend-2"),
        (&[], "/staticx", "backend-3"),
        (&[], "/u/42", "backend-1"),
        (&["-X", "DELETE"], "/thing", "backend-2"),
        (&["-H", "x-canary: 1"], "/", "backend-1"),
        (&["-H", "x-canary: 2"], "/", "backend-3"),
    ];
    for (args, path, want) in cases {
        let url = format!("{base}{path}");
        let mut a = args.to_vec();
        a.push(&url);
        let (code, body) = curl(&t, &a);
        assert_eq!((code, body.trim()), (200, want), "{args:?} {path}");
    }
    let (code, body) = curl(&t, &[&format!("{base}/admin/users")]);
    assert_eq!((code, body.as_str()), (403, "forbidden here\n"));
    let (code, head) = curl(
        &t,
        &["-i", "-H", "Host: secure.test", &format!("{base}/a?b=1")],
    );
    assert_eq!(code, 308);
    assert!(
        head.to_ascii_lowercase()
            .contains("location: https://secure.test/a?b=1"),
        "{head}"
    );
    // A listener without a pool answers what no route matches with 404.
    let (code, body) = curl(&t, &["http://198.18.0.10:81/elsewhere"]);
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        curl(&t, &["http://198.18.0.10:81/only"]).1.trim(),
        "backend-1"
    );
}

/// One echo backend behind a listener with a compressing route and a
/// rewriting one.
fn echo_behind_rewrites() -> (Topology, Echo, Process) {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let yaml = "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: echo
    routes:
      - { match: { path_prefix: /zip }, pool: echo, compress: true }
      - match: { path_prefix: /v1 }
        pool: echo
        strip_prefix: /v1
        request_headers: { set: { x-route: v1 }, remove: [x-drop-me] }
        response_headers: { add: { x-served-by: balancer } }
    http:
      request_headers: { add: { x-listener: web } }
pools:
  - { name: echo, backends: [{ address: \"198.18.1.11:8080\" }] }
";
    let lb = t.start_balancer(yaml, 1);
    (t, echo, lb)
}

#[test]
fn forwarded_requests_carry_who_asked_lose_hop_by_hop_headers_and_reuse_connections() {
    let (t, echo, _lb) = echo_behind_rewrites();
    let (code, out) = curl(
        &t,
        &[
            "-i",
            "-H",
            "X-Forwarded-For: 203.0.113.1",
            "-H",
            "Connection: X-Secret",
            "-H",
            "X-Secret: s",
            "-H",
            "X-Drop-Me: 1",
            "-H",
            "X-Custom-Case: kept",
            "-H",
            "Host: shop.test",
            "http://198.18.0.10/v1/items?q=1",
        ],
    );
    assert_eq!(code, 200, "{out}");
    let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
    let seen = body.to_ascii_lowercase();
    assert!(
        body.starts_with("echo\nGET /items?q=1 HTTP/1.1\r\n"),
        "prefix stripped: {body}"
    );
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.1, 198.18.0.1\r\n"),
        "{body}"
    );
    assert!(seen.contains("x-forwarded-proto: http\r\n"), "{body}");
    assert!(seen.contains("x-forwarded-host: shop.test\r\n"), "{body}");
    assert!(
        seen.contains("host: shop.test\r\n"),
        "the client's Host is kept: {body}"
    );
    assert!(
        seen.contains("x-route: v1\r\n") && seen.contains("x-listener: web\r\n"),
        "{body}"
    );
    assert!(
        !seen.contains("x-secret") && !seen.contains("x-drop-me"),
        "{body}"
    );
    assert!(!seen.contains("connection: x-secret"), "{body}");
    assert!(
        body.contains("X-Custom-Case: kept\r\n"),
        "header case preserved: {body}"
    );
    let answer = head.to_ascii_lowercase();
    assert!(answer.contains("x-served-by: balancer"), "{head}");
    assert!(answer.contains("x-backend: echo"), "{head}");
    assert!(
        !answer.contains("x-hop"),
        "the backend's hop-by-hop header went: {head}"
    );
    assert!(!answer.contains("keep-alive: timeout"), "{head}");

    // Many requests over several client connections, few to the backend.
    let before = (echo.connections(), echo.requests());
    let urls: Vec<String> = (0..20)
        .map(|i| format!("http://198.18.0.10/r{i}"))
        .collect();
    for _ in 0..10 {
        let mut args = vec!["-s", "-o", "/dev/null"];
        args.extend(urls.iter().map(String::as_str));
        let _ = t.client.run("curl", &args);
    }
    let requests = echo.requests() - before.1;
    let connections = echo.connections() - before.0;
    assert_eq!(requests, 200);
    assert!(
        connections <= 3,
        "{connections} backend connections for 200 requests over 10 client connections"
    );
}

#[test]
fn answers_are_compressed_for_clients_that_accept_it() {
    let (t, _echo, _lb) = echo_behind_rewrites();
    // A compressed answer, inflated again by curl.
    let pad = format!("X-Pad: {}", "p".repeat(400));
    let (code, out) = curl(
        &t,
        &["-i", "--compressed", "-H", &pad, "http://198.18.0.10/zip"],
    );
    assert_eq!(code, 200, "{out}");
    let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: br"),
        "{head}"
    );
    assert!(body.contains(&pad), "inflated body: {body}");
    let (_, plain) = curl(&t, &["-i", "-H", &pad, "http://198.18.0.10/zip"]);
    assert!(
        !plain.to_ascii_lowercase().contains("content-encoding"),
        "no Accept-Encoding, no compression"
    );
}

#[test]
fn a_canary_split_keeps_its_weights_and_h2c_works_both_ways() {
    let t = Topology::new(2);
    let _b1 = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "stable",
        &[backend_addr(0, 80, false)],
    );
    let _b2 = nginx::start(
        &t.backends[1],
        t.dir.path(),
        "canary",
        &[backend_addr(1, 80, false)],
    );
    let _h2 = nginx::start_h2c(
        &t.backends[1],
        t.dir.path(),
        "grpcish",
        &[backend_addr(1, 8082, false)],
    );
    let yaml = "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    routes:
      - { match: { path_prefix: /h2 }, pool: h2 }
      - { split: { stable: 95, canary: 5 } }
pools:
  - { name: stable, backends: [{ address: \"198.18.1.11:80\" }] }
  - { name: canary, backends: [{ address: \"198.18.1.12:80\" }] }
  - { name: h2, http: h2c, backends: [{ address: \"198.18.1.12:8082\" }] }
";
    let _lb = t.start_balancer(yaml, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let canary = t.client.enter(|| {
        let mut c = KeepAlive::open(vip).expect("connect");
        (0..4000)
            .filter(|i| c.get().unwrap_or_else(|e| panic!("request {i}: {e}")) == "canary")
            .count()
    });
    // 5% of 4000 is 200; within two points is 120..=280.
    assert!((120..=280).contains(&canary), "canary got {canary} of 4000");
    // HTTP/2 from the client (prior knowledge) and to an h2c backend.
    let (code, body) = curl(&t, &["--http2-prior-knowledge", "http://198.18.0.10/h2/x"]);
    assert_eq!((code, body.trim()), (200, "grpcish HTTP/2.0"));
    let (code, body) = curl(&t, &["--http2-prior-knowledge", "http://198.18.0.10/"]);
    assert_eq!(code, 200);
    assert!(["stable", "canary"].contains(&body.trim()), "{body}");
}

/// Sends `raw` on a new connection to `vip` and returns all it reads back
/// until the balancer closes or `wait` passes.
fn raw(t: &Topology, vip: SocketAddr, raw: &[u8], wait: Duration) -> String {
    t.client.enter(|| {
        let mut s = connect(vip, None).expect("connect");
        s.set_read_timeout(Some(wait)).expect("timeout");
        s.write_all(raw).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

#[test]
fn the_layer_answers_400_404_408_413_429_431_502_503_and_504_itself() {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let hung = Echo::start(&t.backends[0], backend_addr(0, 8081, false), "hung");
    hung.hang();
    let yaml = "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    connect_timeout: 1s
    routes:
      - { match: { path: /ok }, pool: echo }
      - { match: { path: /limited }, pool: echo, rate_limit: { key: client_ip, rate: 1, burst: 1 } }
      - { match: { path: /refused }, pool: refused }
      - { match: { path: /empty }, pool: empty }
      - { match: { path: /slow }, pool: hung }
    http: { header_timeout: 1s, response_timeout: 1s, max_body: 100, max_header_bytes: 16384 }
pools:
  - { name: echo, backends: [{ address: \"198.18.1.11:8080\" }] }
  - { name: hung, backends: [{ address: \"198.18.1.11:8081\" }] }
  - { name: refused, backends: [{ address: \"198.18.1.11:9\" }] }
  - { name: empty, backends: [{ address: \"198.18.1.11:8080\", weight: 0 }] }
";
    let _lb = t.start_balancer(yaml, 1);
    let base = "http://198.18.0.10";
    assert_eq!(curl(&t, &[&format!("{base}/ok")]).0, 200);
    assert_eq!(curl(&t, &[&format!("{base}/nowhere")]).0, 404);
    assert_eq!(curl(&t, &[&format!("{base}/refused")]).0, 502);
    assert_eq!(curl(&t, &[&format!("{base}/empty")]).0, 503);
    let started = Instant::now();
    assert_eq!(curl(&t, &[&format!("{base}/slow")]).0, 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "504 after the response timeout"
    );
    assert_eq!(curl(&t, &[&format!("{base}/limited")]).0, 200);
    let (code, head) = curl(&t, &["-i", &format!("{base}/limited")]);
    assert_eq!(code, 429);
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let big = "x".repeat(1000);
    assert_eq!(
        curl(&t, &["--data-binary", &big, &format!("{base}/ok")]).0,
        413
    );
    let huge = format!("X-Big: {}", "y".repeat(20_000));
    assert_eq!(curl(&t, &["-H", &huge, &format!("{base}/ok")]).0, 431);

    let vip: SocketAddr = (VIP4, 80).into();
    let no_host = raw(&t, vip, b"GET /ok HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    let two_hosts = raw(
        &t,
        vip,
        b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(two_hosts.starts_with("HTTP/1.1 400"), "{two_hosts}");
    let started = Instant::now();
    let slow_head = raw(
        &t,
        vip,
        b"GET /ok HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(5),
    );
    assert!(slow_head.starts_with("HTTP/1.1 408"), "{slow_head}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "408 at the header timeout"
    );
    assert_eq!(
        echo.requests(),
        2,
        "only /ok and the first /limited reached the backend"
    );
}

#[test]
fn requests_are_counted_by_route_and_status_and_logged_one_line_each() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let log = t.path("access.log");
    let yaml = format!(
        "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    routes:
      - {{ name: api, match: {{ path_prefix: /api }}, pool: web }}
      - {{ name: deny, match: {{ path: /secret }}, answer: {{ status: 403 }} }}
    http:
      access_log: {{ path: {}, format: json }}
pools:
  - {{ name: web, backends: [{{ address: \"198.18.1.11:80\" }}] }}
",
        log.display()
    );
    let _lb = t.start_balancer(&yaml, 1);
    for path in ["/api/a", "/api/b", "/api/c", "/secret", "/nowhere"] {
        let _ = curl(
            &t,
            &["-A", "e2e-agent", &format!("http://198.18.0.10{path}")],
        );
    }
    let metrics = t.lb.run("curl", &["-s", "http://127.0.0.1:9900/metrics"]);
    for line in [
        "balancer_http_requests_total{listener=\"web\",route=\"api\",code=\"200\"} 3",
        "balancer_http_requests_total{listener=\"web\",route=\"deny\",code=\"403\"} 1",
        "balancer_http_requests_total{listener=\"web\",route=\"(default)\",code=\"404\"} 1",
        "balancer_http_request_duration_seconds_count{listener=\"web\",route=\"api\"} 3",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    // The access log is written off the request path: give it its flush.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 5 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(entries.len(), 5, "{lines}");
    let first = &entries[0];
    assert_eq!(first["path"], "/api/a");
    assert_eq!(first["status"], 200);
    assert_eq!(first["route"], "api");
    assert_eq!(first["backend"], "198.18.1.11:80");
    assert_eq!(first["method"], "GET");
    assert!(
        first["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("198.18.0.1:"))
    );
    assert!(first["bytes_out"].as_u64() > Some(0));
    assert_eq!(entries[3]["status"], 403);
    assert_eq!(entries[4]["route"], "(default)");
    let status = t.lb.run(
        balancer_tests::balancer_bin().to_str().expect("utf-8"),
        &[
            "status",
            "--state-dir",
            t.path("state").to_str().expect("utf-8"),
        ],
    );
    assert!(
        status.contains("route api") && status.contains("200=3"),
        "{status}"
    );
}
