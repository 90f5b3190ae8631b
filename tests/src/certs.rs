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
    /// A new CA with its files in `dir`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("certs dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=balancer test CA",
            ],
        );
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
            &format!("subjectAltName={}", san.join(",")),
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
            &format!("subjectAltName={}", san.join(",")),
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
                "1",
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
