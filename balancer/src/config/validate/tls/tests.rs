//! `tls` blocks over real files: a good one loads; a key of another
//! certificate and an expired certificate are errors at their lines.

use crate::{
    config::{ConfigError, parse},
    tls::testing::{files, files_with},
};

fn doc(cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "version: 1
listeners:
  - name: web
    address: 198.18.0.10:443
    protocol: tcp
    mode: http
    pool: web
    tls:
      certificates:
        - {{ cert: {}, key: {} }}
      client_ca: {}
pools:
  - {{ name: web, backends: [{{ address: 198.18.1.11:80 }}] }}
",
        cert.display(),
        key.display(),
        cert.display()
    )
}

fn error_of(text: &str) -> String {
    match parse(text, "tls.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid(issues)) => issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn good_files_load_and_bad_ones_are_named_at_their_line() {
    let good = files(&["a.example.test"]);
    let c = parse(&doc(&good.cert, &good.key), "tls.yaml").expect("valid");
    let tls = c.listeners[0]
        .http
        .as_ref()
        .and_then(|h| h.tls.as_ref())
        .expect("tls");
    assert_eq!(tls.certificates[0].cert, good.cert);
    assert!(tls.client_auth.as_ref().is_some_and(|a| a.required));

    let other = files(&["b.example.test"]);
    let e = error_of(&doc(&good.cert, &other.key));
    assert!(e.contains("tls.yaml:10:"), "{e}");
    assert!(e.contains("does not belong to the certificate"), "{e}");

    let mut old = rcgen::CertificateParams::default();
    old.not_before = rcgen::date_time_ymd(2001, 1, 1);
    old.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = files_with(old, &["a.example.test"]);
    let e = error_of(&doc(&expired.cert, &expired.key));
    assert!(e.contains("tls.yaml:10:"), "{e}");
    assert!(e.contains("expired"), "{e}");
}
