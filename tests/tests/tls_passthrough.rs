//! TLS routed by SNI without terminating it: a `proxy` listener reads each
//! ClientHello and splices the connection to the pool of the first route
//! whose `sni` matches. Two `openssl s_server` backends with their own
//! certificates (made at test time by a test CA) stand behind; the client
//! sees each backend's own certificate, verifies it end to end, and a
//! ClientHello sent one byte per segment still routes. Plaintext is closed
//! and counted; a reload changes the routes for new connections.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    process::Command,
    time::Duration,
};

use balancer_tests::{
    Process, Topology,
    certs::{Ca, Pair},
    client::connect,
    scripts,
    tls_client::served_subject,
    topology::{VIP4, backend_addr},
};

const PORT: u16 = 8443;

/// `openssl s_server` on backend `i`'s port 8443 serving `pair`.
fn s_server(t: &Topology, i: usize, pair: &Pair) -> Process {
    let mut cmd: Command = t.backends[i].command("openssl");
    cmd.args(["s_server", "-www", "-accept"])
        .arg(backend_addr(i, PORT, false).to_string())
        .arg("-cert")
        .arg(&pair.cert)
        .arg("-key")
        .arg(&pair.key);
    let mut p = Process::spawn(
        &format!("s_server{i}"),
        cmd,
        t.path(&format!("s_server{i}.log")),
    );
    p.wait_for("ACCEPT", 1, Duration::from_secs(10));
    p
}

/// The passthrough listener: `*.a.example.test` and `b.example.test` to
/// backend 0 (pool `a`), everything else to backend 1; `wild_to` is the
/// pool the wildcard route names.
fn config(wild_to: &str) -> String {
    format!(
        "version: 1
shutdown_grace: 1s
listeners:
  - name: passthrough
    address: {VIP4}:{PORT}
    protocol: tcp
    mode: proxy
    pool: fallback
    routes:
      - match: {{ sni: \"*.a.example.test\" }}
        pool: {wild_to}
      - {{ name: exact, match: {{ sni: b.example.test }}, pool: a }}
pools:
  - {{ name: fallback, backends: [{{ address: \"{b1}\" }}] }}
  - {{ name: a, backends: [{{ address: \"{b0}\" }}] }}
",
        b0 = backend_addr(0, PORT, false),
        b1 = backend_addr(1, PORT, false),
    )
}

/// The common name the TLS client that dribbles its ClientHello verified,
/// connecting for `name`.
fn dribbled(t: &Topology, ca: &Ca, name: &str) -> String {
    let port = PORT.to_string();
    let ca = ca.cert.to_str().expect("utf-8");
    let vip = VIP4.to_string();
    let out = scripts::command(&t.client, "tls_dribble.py", &[&vip, &port, name, ca, "2"])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "{name}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn routes_by_sni_to_backends_that_keep_their_certificates() {
    let t = Topology::new(2);
    let ca = Ca::new(&t.path("certs"));
    let a = ca.server("a", &["*.a.example.test", "b.example.test"]);
    let fallback = ca.server("fallback", &["default.test"]);
    let _s0 = s_server(&t, 0, &a);
    let _s1 = s_server(&t, 1, &fallback);
    let mut lb = t.start_balancer(&config("a"), 1);

    // Each backend's own certificate reaches the client: wildcard route,
    // exact route (any case), and the listener's pool for the bare
    // domain, another name, and no name at all.
    let subject = |sni| served_subject(&t, PORT, sni).unwrap_or_default();
    assert!(subject(Some("x.a.example.test")).contains("CN = *.a.example.test"));
    assert!(subject(Some("deep.x.a.example.test")).contains("CN = *.a.example.test"));
    assert!(subject(Some("B.Example.Test")).contains("CN = *.a.example.test"));
    assert!(subject(Some("a.example.test")).contains("CN = default.test"));
    assert!(subject(Some("other.test")).contains("CN = default.test"));
    assert!(subject(None).contains("CN = default.test"));

    // A ClientHello one byte per segment routes; the handshake completes
    // and verifies against the test CA through the splice.
    assert_eq!(dribbled(&t, &ca, "y.a.example.test"), "CN=*.a.example.test");
    assert_eq!(dribbled(&t, &ca, "default.test"), "CN=default.test");

    // Plaintext is closed without an answer, and neither backend hears it.
    let answer = t.client.enter(|| {
        let mut s = connect(SocketAddr::new(VIP4.into(), PORT), None).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
            .expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        answer
    });
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    let (code, status) = balancer_tests::admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200);
    let counters = &status["listeners"][0]["counters"];
    assert_eq!(counters["tls_hellos"], 8, "{counters}");
    assert_eq!(counters["tls_hellos_without_sni"], 1, "{counters}");
    assert_eq!(counters["tls_hello_refused"], 1, "{counters}");
    assert_eq!(counters["no_backend"], 0, "{counters}");

    // A reload sends the wildcard to the listener's pool from then on.
    std::fs::write(t.path("balancer.yaml"), config("fallback")).expect("write config");
    lb.signal(libc::SIGHUP);
    lb.wait_for("reloaded `", 1, Duration::from_secs(10));
    assert!(subject(Some("x.a.example.test")).contains("CN = default.test"));
    assert!(subject(Some("b.example.test")).contains("CN = *.a.example.test"));
}
