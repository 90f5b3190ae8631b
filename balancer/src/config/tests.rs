//! Loader tests: every example file parses, and each bad file yields an error
//! naming the right line, column, field and value.

use std::path::Path;

use super::{
    ConfigError,
    model::{Algorithm, HttpProbe, Probe, UdpProbe},
    parse,
};

/// A minimal valid document; cases below replace one line of it.
const BASE: &str = "\
version: 1
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: proxy
    pool: web
pools:
  - name: web
    algorithm: maglev
    backends:
      - address: 198.18.1.11:80
        weight: 100
      - address: 198.18.1.12:80
";

#[test]
fn base_is_valid() {
    let c = parse(BASE, "base.yaml").expect("base parses");
    assert_eq!(c.pools[0].algorithm, Algorithm::Maglev);
    assert_eq!(c.pools[0].backends[1].weight, 100);
    assert_eq!(c.admin.to_string(), "127.0.0.1:9900");
}

/// `text` with `/etc/balancer/NAME.pem` and `.key` pointing at certificates
/// made for the test (for each NAME it names), and the directory holding
/// them.
fn with_test_certificates(text: &str) -> (String, Vec<crate::tls::testing::Files>) {
    let mut made = Vec::new();
    let mut out = text.to_owned();
    for name in ["default", "api", "wild", "backend-ca"] {
        let pem = format!("/etc/balancer/{name}.pem");
        if !text.contains(&pem) {
            continue;
        }
        let f = crate::tls::testing::files(&[&format!("{name}.example.test")]);
        out = out.replace(&pem, &f.cert.display().to_string()).replace(
            &format!("/etc/balancer/{name}.key"),
            &f.key.display().to_string(),
        );
        made.push(f);
    }
    (out, made)
}

#[test]
fn every_example_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read example");
            // TLS examples name certificates under /etc/balancer: made
            // here, never committed.
            let (text, _certs) = with_test_certificates(&text);
            let name = path.display().to_string();
            parse(&text, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 5, "expected the example files, found {n}");
    super::embedded_default().expect("embedded default parses");
}

#[test]
fn each_health_kind_keeps_only_its_own_settings() {
    let probe = |health: &str| {
        let doc = replace(
            "    algorithm: maglev",
            &format!("    algorithm: maglev\n    health: {health}"),
        );
        let c = parse(&doc, "health.yaml").expect("parses");
        c.pools[0].health.clone().expect("health").probe
    };
    assert_eq!(probe("{ kind: tcp }"), Probe::Tcp);
    assert_eq!(
        probe("{ kind: http, host: example.test }"),
        Probe::Http(HttpProbe {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            host: Some("example.test".to_owned()),
            expect_status: (200, 399),
        })
    );
    assert_eq!(
        probe("{ kind: udp, send: ping }"),
        Probe::Udp(UdpProbe {
            send: "ping".to_owned(),
            expect: None,
        })
    );
}

/// The issues `text` yields; panics if it loads.
pub(super) fn errors(text: &str) -> Vec<super::Issue> {
    match parse(text, "bad.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid(issues)) => issues,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// `BASE` with its first `from` replaced by `to`.
pub(super) fn replace(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "`{from}` not in BASE");
    BASE.replacen(from, to, 1)
}

/// `BASE` with `extra` after it.
pub(super) fn append(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// `announce` with nothing set takes the contract's defaults; without the
/// section nothing is announced.
#[test]
fn announce_defaults_to_vip0_and_one_healthy_backend() {
    let none = super::parse(&append(""), "t.yaml").expect("valid");
    assert_eq!(none.announce, None);
    let set = super::parse(&append("announce: {}\n"), "t.yaml").expect("valid");
    assert_eq!(
        set.announce,
        Some(super::model::Announce {
            interface: "vip0".to_owned(),
            min_healthy: 1,
        })
    );
    let own = super::parse(
        &append("announce: { interface: lb-vips, min_healthy: 2 }\n"),
        "t.yaml",
    )
    .expect("valid");
    assert_eq!(
        own.announce.map(|a| (a.interface, a.min_healthy)),
        Some(("lb-vips".to_owned(), 2))
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let doc = replace("198.18.1.12:80", "nope").replace("weight: 100", "weight: -3");
    let issues = errors(&doc);
    assert_eq!(issues.len(), 2, "{issues:#?}");
}

#[test]
fn message_has_file_line_column_field_and_value() {
    let issues = errors(&replace("198.18.1.12:80", "198.18.1.300:80"));
    assert_eq!(
        issues[0].to_string(),
        "bad.yaml:14:18: pools[0].backends[1].address: `198.18.1.300:80` is not an IP:port \
         (expected e.g. `198.18.1.11:80` or `[fd00::1]:80`)"
    );
}

/// No input makes the loader panic: every truncation of a valid file and
/// thousands of byte mutations either load or produce located errors.
#[test]
fn no_input_panics() {
    let full = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/xdp-dsr.yaml"
    ))
    .expect("example");
    let check = |text: &str| {
        if let Err(ConfigError::Invalid(issues)) = parse(text, "fuzz.yaml") {
            assert!(!issues.is_empty());
            for i in issues {
                assert!(i.line >= 1 && i.column >= 1, "{i}");
            }
        }
    };
    for end in 0..full.len() {
        if full.is_char_boundary(end) {
            check(&full[..end]);
        }
    }
    // A fixed-seed generator keeps failures reproducible.
    let mut state = 0x2545_f491_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b" :-[]{}\n\t#&*!|>'\"0123456789abcxyz.,/";
    for _ in 0..3000 {
        let mut bytes = full.clone().into_bytes();
        for _ in 0..=next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
        }
        check(&String::from_utf8_lossy(&bytes));
    }
}

/// A public admin address is accepted with a token, or when the file says
/// it means it (`insecure: true`); `public_metrics` is read.
#[test]
fn public_admin_addresses_need_a_token_or_insecure() {
    let with_token = append(
        "admin:\n  listen: 0.0.0.0:9900\n  token_file: /etc/balancer/token\n  public_metrics: true\n",
    );
    let c = parse(&with_token, "t.yaml").expect("a token makes it valid");
    assert!(c.admin_public_metrics);
    assert!(!c.admin_insecure);
    let insecure = append("admin:\n  listen: \"[::]:9900\"\n  insecure: true\n");
    let c = parse(&insecure, "t.yaml").expect("insecure makes it valid");
    assert!(c.admin_insecure);
    let loopback = append("admin:\n  listen: \"[::1]:9900\"\n");
    assert!(
        parse(&loopback, "t.yaml").is_ok(),
        "loopback needs no token"
    );
}
