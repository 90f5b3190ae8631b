//! TLS scanners from Debian against a TLS listener: sslscan sees only TLS
//! 1.2 and 1.3 and only AEAD cipher suites; testssl.sh (with the test CA
//! added to its trust stores) reports no finding rated high or critical.

use balancer_tests::{
    Topology,
    certs::{Ca, answering_tls_listener},
    topology::VIP4,
};

#[test]
fn scanners_find_only_tls12_and_tls13_with_strong_ciphers_and_nothing_high() {
    let t = Topology::new(1);
    let ca = Ca::new(&t.path("certs"));
    let pair = ca.server("scan", &["scan.example.test"]);
    let _lb = t.start_balancer(&answering_tls_listener(&pair, "scanned"), 1);

    let target = format!("{VIP4}:443");
    let out = t
        .client
        .run("sslscan", &["--no-colour", "--no-heartbleed", &target]);
    for (protocol, state) in [
        ("SSLv2", "disabled"),
        ("SSLv3", "disabled"),
        ("TLSv1.0", "disabled"),
        ("TLSv1.1", "disabled"),
        ("TLSv1.2", "enabled"),
        ("TLSv1.3", "enabled"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(protocol) && l.contains(state)),
            "{protocol} should be {state}:\n{out}"
        );
    }
    let accepted: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Preferred") || l.starts_with("Accepted"))
        .collect();
    assert!(!accepted.is_empty(), "no cipher accepted:\n{out}");
    for line in &accepted {
        assert!(
            line.contains("GCM") || line.contains("CHACHA20"),
            "a cipher suite that is not AEAD: {line}"
        );
    }

    let json = t.path("testssl.json");
    let json_arg = json.to_str().expect("utf-8");
    let ca_arg = ca.cert.to_str().expect("utf-8");
    // testssl.sh exits non-zero when it has findings of any level; the
    // JSON file is what is judged.
    let _ = t
        .client
        .command("testssl")
        .args([
            // What a scan of a TLS terminator is about, not every check
            // testssl.sh has (the full run takes minutes): protocols,
            // cipher categories, server preference, certificate and
            // defaults, known vulnerabilities.
            "--protocols",
            "--std",
            "--server-preference",
            "--server-defaults",
            "--vulnerable",
            // The test namespaces have no resolver: every lookup would wait
            // for its timeout.
            "--nodns",
            "none",
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--severity",
            "HIGH",
            "--add-ca",
            ca_arg,
            "--jsonfile",
            json_arg,
            "--ip",
            VIP4_TEXT,
            "https://scan.example.test/",
        ])
        .output()
        .expect("run testssl");
    let text = std::fs::read_to_string(&json).expect("testssl wrote its JSON");
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).expect("testssl JSON");
    let bad: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    assert!(
        bad.is_empty(),
        "testssl.sh findings rated high or critical: {bad:#?}"
    );
}

/// The VIP as text, for testssl.sh's `--ip`.
const VIP4_TEXT: &str = "198.18.0.10";
