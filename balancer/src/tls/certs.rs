//! Certificates and their keys from PEM files: the chain (leaf first), the
//! key (PKCS#8, RSA or EC), checked to belong together, with the names the
//! leaf serves (DNS subjectAltNames, else its common name) and when it
//! expires. Read with rustls-pki-types; the leaf's fields with x509-parser.
//! Used at validation (so `balancer check` names the bad file at its line)
//! and again at each start and reload, which re-read the files.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    sign::CertifiedKey,
};
use x509_parser::{extensions::GeneralName, prelude::FromDer as _};

/// A certificate chain with its key, ready to serve.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The chain and key, as rustls takes them.
    pub key: Arc<CertifiedKey>,
    /// The names the leaf serves, lower case (`*.example.test` for a
    /// wildcard).
    pub names: Vec<String>,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// Why a certificate cannot be served.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable PEM key.
    #[error("{} holds no PEM private key (PKCS#8, RSA or EC): {reason}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found.
        reason: String,
    },
    /// The key cannot sign (an unsupported algorithm or a damaged key).
    #[error("the key in {} cannot be used: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The leaf is not a valid X.509 certificate.
    #[error("the certificate in {} cannot be parsed: {reason}", path.display())]
    Unparsable {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
    /// The leaf has expired.
    #[error("the certificate in {} expired {} s ago; renew it", path.display(), ago.as_secs())]
    Expired {
        /// The file.
        path: PathBuf,
        /// How long ago.
        ago: Duration,
    },
    /// The leaf names no host.
    #[error("the certificate in {} names no host (no DNS subjectAltName or common name)", path.display())]
    NoNames {
        /// The file.
        path: PathBuf,
    },
}

/// The chain in `cert` with the key in `key`, as of `now`.
pub fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Loaded, CertError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate { path: cert.into() });
    };
    let (names, not_after) = leaf_fields(cert, leaf)?;
    if let Ok(ago) = now.duration_since(not_after) {
        return Err(CertError::Expired {
            path: cert.into(),
            ago,
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::NoKey {
        path: key.into(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => CertError::Mismatch {
            cert: cert.into(),
            key: key.into(),
        },
        other => CertError::BadKey {
            path: key.into(),
            reason: other.to_string(),
        },
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        not_after,
    })
}

/// The certificates of a CA bundle.
pub fn ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(CertError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| CertError::Read {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The leaf's names and expiry.
fn leaf_fields(
    path: &Path,
    leaf: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime), CertError> {
    let (_, x509) =
        x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).map_err(|e| {
            CertError::Unparsable {
                path: path.into(),
                reason: e.to_string(),
            }
        })?;
    let mut names: Vec<String> = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        // RFC 6125 leaves the common name to certificates without DNS
        // names; clients still accept it there.
        names.extend(
            x509.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    if names.is_empty() {
        return Err(CertError::NoNames { path: path.into() });
    }
    let secs = x509.validity().not_after.timestamp();
    let not_after = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    Ok((names, not_after))
}

/// The subject of a certificate, in RFC 4514 form (`CN=..,O=..`).
#[must_use]
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).ok()?;
    Some(x509.subject().to_string())
}

#[cfg(test)]
mod tests;
