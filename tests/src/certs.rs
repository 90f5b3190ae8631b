//! Test certificates, made at test time with the `openssl` command (never
//! committed): a CA, server certificates it signs for given names, and
//! client certificates. ECDSA P-256 unless RSA is asked for.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A test CA in a directory.
pub struct Ca {
    dir: PathBuf,
    /// The CA's certificate (PEM), for clients' `--cacert`.
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    /// PEM chain (the leaf).
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// Where a real CA would publish revocations (scanners rate a certificate
/// without one as a finding; nothing fetches it here).
const CRL: &str = "crlDistributionPoints=URI:http://ca.example.test/test.crl";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new CA with its files in `dir`, named after the directory (two
    /// CAs of one test are told apart by name, as real ones are).
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("certs dir");
        let subject = format!(
            "/CN=balancer test CA {}",
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        self_signed_req(dir, ("ca.pem", "ca.key"), 120, &subject, &[]);
        Self {
            dir: dir.to_owned(),
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        }
    }

    /// A server certificate for `names` (the first is its common name),
    /// saved as `stem.pem` and `stem.key`.
    #[must_use]
    pub fn server(&self, stem: &str, names: &[&str]) -> Pair {
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        self.sign(
            stem,
            names[0],
            &format!("subjectAltName={}\n{CRL}", san.join(",")),
            "ec",
        )
    }

    /// Like [`Ca::server`] with an RSA 2048 key.
    #[must_use]
    pub fn server_rsa(&self, stem: &str, names: &[&str]) -> Pair {
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        self.sign(
            stem,
            names[0],
            &format!("subjectAltName={}\n{CRL}", san.join(",")),
            "rsa",
        )
    }

    /// A client certificate with common name `cn`.
    #[must_use]
    pub fn client(&self, stem: &str, cn: &str) -> Pair {
        self.sign(stem, cn, "extendedKeyUsage=clientAuth", "ec")
    }

    fn sign(&self, stem: &str, cn: &str, extension: &str, kind: &str) -> Pair {
        let ext = self.dir.join(format!("{stem}.ext"));
        std::fs::write(&ext, format!("{extension}\n")).expect("write extensions");
        let (key, csr, cert) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        let newkey: &[&str] = if kind == "rsa" {
            &["-newkey", "rsa:2048"]
        } else {
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        let subj = format!("/CN={cn}");
        let mut req = vec!["req"];
        req.extend_from_slice(newkey);
        req.extend_from_slice(&["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(&self.dir, &req);
        let ca_cert = self.cert.to_str().expect("utf-8");
        let ca_key = self.key.to_str().expect("utf-8");
        let ext = ext.to_str().expect("utf-8");
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "90",
                "-extfile",
                ext,
            ],
        );
        Pair {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}

/// A self-signed certificate for `name` valid `days` days, saved in `dir`
/// as `stem.pem` and `stem.key` (a test that needs an expiry date of its
/// own, like the certificate alert's).
#[must_use]
pub fn self_signed(dir: &Path, stem: &str, name: &str, days: u32) -> Pair {
    let (cert, key) = (format!("{stem}.pem"), format!("{stem}.key"));
    let san = format!("subjectAltName=DNS:{name}");
    self_signed_req(
        dir,
        (&cert, &key),
        days,
        &format!("/CN={name}"),
        &["-addext", &san],
    );
    Pair {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

/// `openssl req -x509`: a new P-256 key and a certificate signed by it,
/// written as `files` (certificate, key) in `dir`, valid `days` days for
/// `subject`, with `extra` arguments.
fn self_signed_req(dir: &Path, files: (&str, &str), days: u32, subject: &str, extra: &[&str]) {
    let days = days.to_string();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        &days,
        "-subj",
        subject,
        "-keyout",
        files.1,
        "-out",
        files.0,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// A config with one TLS listener on the VIP's port 443 serving `pair`,
/// whose only route answers 200 with `body` from the balancer itself (the
/// TLS tests that need no backend).
#[must_use]
pub fn answering_tls_listener(pair: &Pair, body: &str) -> String {
    format!(
        "version: 1
shutdown_grace: 1s
listeners:
  - name: tls
    address: {}:443
    protocol: tcp
    mode: http
    routes:
      - {{ match: {{ path_prefix: / }}, answer: {{ status: 200, body: \"{body}\\n\" }} }}
    tls:
      certificates: [{{ cert: {}, key: {} }}]
pools:
  - {{ name: unused, backends: [{{ address: \"198.18.1.11:80\" }}] }}
",
        crate::topology::VIP4,
        pair.cert.display(),
        pair.key.display()
    )
}
