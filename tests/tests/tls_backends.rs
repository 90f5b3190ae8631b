//! TLS from the HTTP layer to backends (`pools[].tls`): an nginx HTTPS
//! backend with a certificate of the test CA, reached through pools that
//! verify it (by SNI, or by IP address without one), that trust another
//! CA (502, the reason logged and counted; with a health check, which
//! speaks TLS too, the backend is down), that turn verification off, that
//! show a client certificate, and that speak HTTP/2 agreed by ALPN.

use std::time::Duration;

use balancer_tests::{
    Topology,
    certs::{Ca, Pair},
    client::curl,
    nginx,
    topology::{VIP4, backend_addr},
};

const NAME: &str = "backend.internal.test";

#[test]
fn backends_over_tls_are_verified_and_failures_are_502() {
    let t = Topology::new(1);
    let ca = Ca::new(&t.path("ca"));
    let other = Ca::new(&t.path("other-ca"));
    let server = ca.server("backend", &[NAME]);
    let client = ca.client("lb", "balancer.test");
    let backend = backend_addr(0, 443, false);
    let _nginx = nginx::start_tls(
        &t.backends[0],
        t.dir.path(),
        "tls-backend",
        &[backend],
        (&server, &ca.cert),
    );
    let yaml = config(&ca, &other, &client);
    let lb = t.start_balancer(&yaml, 1);
    let url = |path: &str| format!("http://{VIP4}/{path}");

    // Verified for its SNI: the backend sees the name and no client
    // certificate, over HTTP/1.1.
    let (code, body) = curl(&t, &[&url("verified")]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body.trim(),
        format!("tls-backend HTTP/1.1 sni={NAME} client=NONE")
    );
    // HTTP/2 agreed by ALPN.
    let (code, body) = curl(&t, &[&url("h2")]);
    assert_eq!(
        (code, body.trim()),
        (
            200,
            format!("tls-backend HTTP/2.0 sni={NAME} client=NONE").as_str()
        )
    );
    // A client certificate of the CA nginx trusts.
    let (code, body) = curl(&t, &[&url("client")]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("client=SUCCESS"), "{body}");
    // Verification off: served, without SNI.
    let (code, body) = curl(&t, &[&url("unverified")]);
    assert_eq!(
        (code, body.trim()),
        (200, "tls-backend HTTP/1.1 sni= client=NONE")
    );

    // Another CA: 502 that says TLS, the reason in the log.
    let (code, body) = curl(&t, &[&url("wrong")]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("TLS to the backend failed"), "{body}");
    // Without SNI the certificate is checked for the backend's address,
    // which it does not name.
    let (code, body) = curl(&t, &[&url("by-address")]);
    assert_eq!(code, 502, "{body}");
    let log = lb.output();
    assert!(log.contains("UnknownIssuer"), "{log}");
    assert!(log.contains("not valid for name"), "{log}");

    counted_and_checked(&t);
}

/// An `http` listener on the VIP's port 80 whose routes (`/verified`,
/// `/wrong`, `/unverified`, `/by-address`, `/client`, `/h2`) each reach
/// the one HTTPS backend through a pool of other TLS settings; `ca` signed
/// the backend's certificate, `other` did not.
fn config(ca: &Ca, other: &Ca, client: &Pair) -> String {
    let backend = backend_addr(0, 443, false);
    let (ca_pem, other_pem) = (ca.cert.display(), other.cert.display());
    let pool = |name: &str, extra: &str, tls: &str| {
        format!(
            "  - {{ name: {name}, {extra}backends: [{{ address: \"{backend}\" }}], tls: {{ {tls} }} }}\n"
        )
    };
    let route = |path: &str, pool: &str| {
        format!("      - {{ match: {{ path_prefix: /{path} }}, pool: {pool} }}\n")
    };
    let mut yaml = format!(
        "version: 1
shutdown_grace: 1s
listeners:
  - name: web
    address: {VIP4}:80
    protocol: tcp
    mode: http
    routes:
"
    );
    for (path, pool) in [
        ("verified", "verified"),
        ("wrong", "wrong-ca"),
        ("unverified", "unverified"),
        ("by-address", "by-address"),
        ("client", "with-client-cert"),
        ("h2", "h2"),
    ] {
        yaml.push_str(&route(path, pool));
    }
    yaml.push_str("pools:\n");
    let check = "health: { kind: http, interval: 300ms, timeout: 250ms, rise: 1, fall: 1 }, ";
    yaml.push_str(&pool(
        "verified",
        check,
        &format!("sni: {NAME}, ca: {ca_pem}"),
    ));
    let tcp_check = "health: { kind: tcp, interval: 300ms, timeout: 250ms, rise: 1, fall: 1 }, ";
    yaml.push_str(&pool(
        "wrong-ca",
        "",
        &format!("sni: {NAME}, ca: {other_pem}"),
    ));
    // The same, checked: its TLS check fails.
    yaml.push_str(&pool(
        "wrong-ca-checked",
        tcp_check,
        &format!("sni: {NAME}, ca: {other_pem}"),
    ));
    yaml.push_str(&pool("unverified", "", "verify: false"));
    yaml.push_str(&pool("by-address", "", &format!("ca: {ca_pem}")));
    yaml.push_str(&pool(
        "with-client-cert",
        "",
        &format!(
            "sni: {NAME}, ca: {ca_pem}, cert: {}, key: {}",
            client.cert.display(),
            client.key.display()
        ),
    ));
    yaml.push_str(&pool(
        "h2",
        "http: h2, ",
        &format!("sni: {NAME}, ca: {ca_pem}"),
    ));
    yaml
}

/// Failures are counted per backend; the pool that trusts another CA is
/// down by its TLS check, the verified one up by its HTTPS check.
fn counted_and_checked(t: &Topology) {
    std::thread::sleep(Duration::from_secs(1));
    let (code, status) = balancer_tests::admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200);
    let pool = |name: &str| {
        status["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("pool {name} in {status}"))["backends"][0]
            .clone()
    };
    let wrong = pool("wrong-ca");
    assert!(wrong["tls_failures"].as_u64() >= Some(1), "{wrong}");
    let wrong = pool("wrong-ca-checked");
    assert_eq!(wrong["state"], "down", "{wrong}");
    assert!(
        wrong["last_check_error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS")),
        "{wrong}"
    );
    assert!(pool("by-address")["tls_failures"].as_u64() >= Some(1));
    let verified = pool("verified");
    assert_eq!(verified["state"], "up", "{verified}");
    assert_eq!(verified["tls_failures"], 0, "{verified}");
}
