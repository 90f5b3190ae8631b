//! Certificates made for unit tests (rcgen), written to files and loaded
//! the way the daemon loads them.

use std::{path::PathBuf, time::SystemTime};

use super::certs::{self, Loaded};

/// A self-signed certificate and its key in a temporary directory.
pub struct Files {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM key.
    pub key: PathBuf,
}

/// Files for a certificate of `names` made from `params`.
pub fn files_with(mut params: rcgen::CertificateParams, names: &[&str]) -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    params.subject_alt_names = names
        .iter()
        .map(|n| rcgen::SanType::DnsName((*n).try_into().expect("dns name")))
        .collect();
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Files {
        dir,
        cert: cert_path,
        key: key_path,
    }
}

/// Files for a certificate of `names`, valid now.
pub fn files(names: &[&str]) -> Files {
    files_with(rcgen::CertificateParams::default(), names)
}

/// A loaded certificate of `names`.
pub fn certificate(names: &[&str]) -> Loaded {
    let f = files(names);
    certs::load(&f.cert, &f.key, &super::provider(), SystemTime::now()).expect("loads")
}
