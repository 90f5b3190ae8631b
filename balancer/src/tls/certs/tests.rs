//! Loading certificates: what is served, and each way a file is refused.

use std::time::SystemTime;

use super::{CertError, load};
use crate::tls::{
    provider,
    testing::{files, files_with},
};

#[test]
fn a_chain_and_key_load_with_the_leafs_names_and_expiry() {
    let f = files(&["a.example.test", "*.b.example.test"]);
    let loaded = load(&f.cert, &f.key, &provider(), SystemTime::now()).expect("loads");
    assert_eq!(loaded.names, ["a.example.test", "*.b.example.test"]);
    assert!(loaded.not_after > SystemTime::now());
}

#[test]
fn each_unusable_file_is_refused_with_its_reason() {
    let f = files(&["a.example.test"]);
    let other = files(&["a.example.test"]);
    let now = SystemTime::now();
    let p = provider();
    let missing = f.dir.path().join("missing.pem");
    assert!(matches!(
        load(&missing, &f.key, &p, now),
        Err(CertError::Read { .. })
    ));
    // The key of another certificate.
    assert!(matches!(
        load(&f.cert, &other.key, &p, now),
        Err(CertError::Mismatch { .. })
    ));
    // A key where the certificate should be, and the reverse.
    assert!(matches!(
        load(&f.key, &f.key, &p, now),
        Err(CertError::NoCertificate { .. })
    ));
    assert!(matches!(
        load(&f.cert, &f.cert, &p, now),
        Err(CertError::NoKey { .. })
    ));
    let mut old = rcgen::CertificateParams::default();
    old.not_before = rcgen::date_time_ymd(2001, 1, 1);
    old.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = files_with(old, &["a.example.test"]);
    let e = load(&expired.cert, &expired.key, &p, now).expect_err("expired");
    assert!(matches!(e, CertError::Expired { .. }), "{e}");
    assert!(e.to_string().contains("cert.pem"), "{e}");
}
