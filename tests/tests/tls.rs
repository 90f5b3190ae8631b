//! TLS termination end to end: real clients (curl, `openssl s_client`)
//! in the client namespace, certificates made at test time by a test CA,
//! nginx and a recording echo backend behind. SNI picks the certificate
//! (exact, wildcard, default; strict refusal), ALPN agrees on HTTP/2 or
//! HTTP/1.1, TLS 1.0 and 1.1 are refused, sessions resume, backends hear
//! `X-Forwarded-Proto: https`, a reload swaps certificates and refuses a
//! bad one while the old keeps serving, files rewritten in place are
//! picked up without a reload, and client certificates are verified.

use std::{path::Path, time::Duration};

use balancer_tests::{
    Topology,
    certs::{Ca, Pair},
    echo::Echo,
    nginx,
    tls_client::{attempt, s_client, served_subject},
    topology::{VIP4, backend_addr},
};

/// `curl` to `https://{name}:{port}/` resolved to the VIP, trusting `ca`:
/// the status and body, or `None` when the request failed. A `-w` in
/// `extra` replaces the helper's and must end with `\n%{http_code}`.
fn curl(
    t: &Topology,
    ca: &Path,
    (name, port): (&str, u16),
    extra: &[&str],
) -> Option<(u16, String)> {
    let resolve = format!("{name}:{port}:{VIP4}");
    let url = format!("https://{name}:{port}/");
    let ca = ca.to_str().expect("utf-8");
    let mut args = vec![
        "-s",
        "--max-time",
        "10",
        "--resolve",
        &resolve,
        "--cacert",
        ca,
        "-w",
        "\n%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let (ok, out) = attempt(&t.client, "curl", &args, "");
    if !ok {
        return None;
    }
    let (body, code) = out.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_owned()))
}

/// A topology with the echo backend, a CA and three server certificates:
/// `default.test`, `a.example.test` and `*.b.example.test`.
fn fixture() -> (Topology, Echo, Ca, [Pair; 3]) {
    let t = Topology::new(2);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let ca = Ca::new(&t.path("certs"));
    let pairs = [
        ca.server("default", &["default.test"]),
        ca.server("a", &["a.example.test"]),
        ca.server("wild", &["*.b.example.test"]),
    ];
    (t, echo, ca, pairs)
}

fn tls_config(a: &Pair, wild: &Pair, default: &Pair, extra: &str) -> String {
    format!(
        "version: 1
shutdown_grace: 2s
listeners:
  - name: tls
    address: {VIP4}:443
    protocol: tcp
    mode: http
    pool: echo
    tls:
      certificates:
        - {{ cert: {dc}, key: {dk} }}
        - {{ cert: {ac}, key: {ak} }}
        - {{ cert: {wc}, key: {wk} }}
{extra}pools:
  - {{ name: echo, backends: [{{ address: \"{echo}\" }}] }}
  - {{ name: b2, backends: [{{ address: \"198.18.1.12:80\" }}] }}
",
        dc = default.cert.display(),
        dk = default.key.display(),
        ac = a.cert.display(),
        ak = a.key.display(),
        wc = wild.cert.display(),
        wk = wild.key.display(),
        echo = backend_addr(0, 8080, false),
    )
}

#[test]
fn sni_alpn_versions_resumption_and_forwarded_proto() {
    let t = Topology::new(2);
    let _nginx = nginx::start_all(&t, 80, false);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let ca = Ca::new(&t.path("certs"));
    let default = ca.server("default", &["default.test"]);
    let a = ca.server("a", &["a.example.test"]);
    let wild = ca.server_rsa("wild", &["*.b.example.test"]);
    let strict = format!(
        "  - name: strict
    address: {VIP4}:8443
    protocol: tcp
    mode: http
    pool: b2
    tls:
      strict_sni: true
      certificates: [{{ cert: {}, key: {} }}]
",
        a.cert.display(),
        a.key.display()
    );
    let _lb = t.start_balancer(&tls_config(&a, &wild, &default, &strict), 2);

    // SNI: exact, one-label wildcard, and the first certificate otherwise.
    let subject = |sni| served_subject(&t, 443, sni).unwrap_or_default();
    assert!(subject(Some("a.example.test")).contains("CN = a.example.test"));
    assert!(subject(Some("x.b.example.test")).contains("CN = *.b.example.test"));
    assert!(subject(Some("unknown.test")).contains("CN = default.test"));
    assert!(subject(None).contains("CN = default.test"));
    // Strict: a name no certificate serves is refused, as is no name.
    assert!(served_subject(&t, 8443, Some("a.example.test")).is_some());
    assert_eq!(served_subject(&t, 8443, Some("unknown.test")), None);
    assert_eq!(served_subject(&t, 8443, None), None);

    // ALPN: HTTP/2 when the client offers it, HTTP/1.1 otherwise; the
    // backend hears X-Forwarded-Proto: https either way.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (code, body) = curl(
            &t,
            &ca.cert,
            ("a.example.test", 443),
            &[
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}\n%{http_code}",
            ],
        )
        .expect("curl over TLS");
        assert_eq!(code, 200);
        assert_eq!(body, version, "{flag}");
    }
    let heads = echo.heads();
    assert!(heads.len() >= 2, "{heads:?}");
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-forwarded-proto: https"), "{head}");
        assert!(lower.contains("x-forwarded-host: a.example.test"), "{head}");
    }

    refuses_old_versions(&t);
    resumes_sessions(&t);
}

/// TLS 1.0 and 1.1 are refused even from a client that offers them.
fn refuses_old_versions(t: &Topology) {
    for old in ["-tls1", "-tls1_1"] {
        let (ok, out) = s_client(
            t,
            443,
            &[
                old,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-servername",
                "a.example.test",
            ],
            "",
        );
        assert!(
            !ok || !out.contains("-----BEGIN CERTIFICATE-----"),
            "{old}: {out}"
        );
    }
}

/// A session saved by one connection is resumed by the next, by session
/// ID (TLS 1.2) and by ticket (TLS 1.3).
fn resumes_sessions(t: &Topology) {
    for version in ["-tls1_2", "-tls1_3"] {
        let session = t.path(&format!("session{version}"));
        let session = session.to_str().expect("utf-8");
        let base = ["-servername", "a.example.test", version];
        let mut first = base.to_vec();
        // Read until the server closes: TLS 1.3 tickets come after the
        // handshake, and s_client saves only what it has read.
        first.extend(["-sess_out", session, "-ign_eof"]);
        // Ask for something so the TLS 1.3 ticket arrives before closing.
        let get = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n";
        let (ok, out) = s_client(t, 443, &first, get);
        assert!(ok, "{version} first connection: {out}");
        let mut second = base.to_vec();
        second.extend(["-sess_in", session]);
        let (ok, out) = s_client(t, 443, &second, get);
        assert!(
            ok && out.contains("Reused,"),
            "{version} not resumed: {out}"
        );
    }
}

#[test]
fn a_reload_swaps_certificates_and_refuses_a_bad_one() {
    let (t, _echo, ca, [default, a, wild]) = fixture();
    let mut lb = t.start_balancer(&tls_config(&a, &wild, &default, ""), 1);
    let serial = || {
        let (_, out) = s_client(&t, 443, &["-servername", "a.example.test"], "");
        let pem: String = out
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .collect();
        let (_, serial) = attempt(&t.client, "openssl", &["x509", "-noout", "-serial"], &pem);
        serial.trim().to_owned()
    };
    let before = serial();
    assert!(before.starts_with("serial="), "{before}");

    // A renewed certificate in the same files: a reload serves it.
    let renewed = ca.server("a-renewed", &["a.example.test"]);
    std::fs::copy(&renewed.cert, &a.cert).expect("copy cert");
    std::fs::copy(&renewed.key, &a.key).expect("copy key");
    lb.signal(libc::SIGHUP);
    lb.wait_for("reloaded `", 1, Duration::from_secs(10));
    let after = serial();
    assert_ne!(before, after, "the reload did not swap the certificate");

    // A key that does not belong to its certificate: the reload is refused
    // with the file named, and the running certificate keeps serving.
    std::fs::copy(&default.key, &a.key).expect("copy mismatched key");
    lb.signal(libc::SIGHUP);
    lb.wait_for("reload refused", 1, Duration::from_secs(10));
    assert!(lb.output().contains("a.key"), "{}", lb.output());
    assert_eq!(serial(), after);
    assert!(curl(&t, &ca.cert, ("a.example.test", 443), &[]).is_some());
    std::fs::copy(&renewed.key, &a.key).expect("restore key");

    // Renewed in place with no reload asked for (as renewal tools do, the
    // certificate first, then its key): the watcher serves it.
    let third = ca.server("a-third", &["a.example.test"]);
    std::fs::copy(&third.cert, &a.cert).expect("copy cert");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::copy(&third.key, &a.key).expect("copy key");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while serial() == after && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_ne!(serial(), after, "the rewritten files were not picked up");
    assert!(lb.output().contains("certificate files changed on disk"));
}

#[test]
fn client_certificates_are_verified_and_their_subject_reaches_the_backend() {
    let (t, echo, ca, [default, a, wild]) = fixture();
    // Client certificates, required: refused without one, served with one
    // the CA signed, whose subject reaches the backend (and a client's own
    // header of that name does not).
    let client = ca.client("client", "alice");
    let extra = format!(
        "  - name: mtls
    address: {VIP4}:9443
    protocol: tcp
    mode: http
    pool: echo
    tls:
      certificates: [{{ cert: {}, key: {} }}]
      client_ca: {}
",
        a.cert.display(),
        a.key.display(),
        ca.cert.display()
    );
    let _lb = t.start_balancer(&tls_config(&a, &wild, &default, &extra), 2);
    let spoof = ["-H", "X-Client-Subject: CN=mallory"];
    let target = ("a.example.test", 9443);
    assert_eq!(
        curl(&t, &ca.cert, target, &spoof),
        None,
        "a client without a certificate was served"
    );
    let (cert, key) = (
        client.cert.to_str().expect("utf-8"),
        client.key.to_str().expect("utf-8"),
    );
    let with_cert = [&spoof[..], &["--cert", cert, "--key", key]].concat();
    let (code, _) = curl(&t, &ca.cert, target, &with_cert).expect("served with a certificate");
    assert_eq!(code, 200);
    let head = echo.heads().pop().expect("the backend saw the request");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-client-subject: cn=alice"), "{head}");
    assert!(!lower.contains("mallory"), "{head}");
}

/// h2load over TLS: many requests on a few connections, HTTP/2 by ALPN,
/// and HTTP/1.1 when that is all the client offers; none fails.
#[test]
fn h2load_over_tls_completes_every_request() {
    let (t, echo, _ca, [default, a, wild]) = fixture();
    let _lb = t.start_balancer(&tls_config(&a, &wild, &default, ""), 1);
    let url = format!("https://{VIP4}:443/");
    for (extra, protocol) in [(None, "h2"), (Some("--h1"), "http/1.1")] {
        let mut args = vec!["-n", "400", "-c", "4", "-m", "10"];
        args.extend(extra);
        args.push(&url);
        let (ok, out) = attempt(&t.client, "h2load", &args, "");
        assert!(ok, "{out}");
        assert!(out.contains("400 succeeded, 0 failed, 0 errored"), "{out}");
        assert!(
            out.contains(&format!("Application protocol: {protocol}")),
            "{out}"
        );
        assert!(out.contains("TLS Protocol: TLSv1.3"), "{out}");
    }
    assert!(echo.connections() >= 1);
}
