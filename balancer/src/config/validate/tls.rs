//! A listener's `tls` block: only on `http` listeners, at least one
//! certificate, every certificate loaded now (readable, PEM, its key
//! belongs to it, not expired), so `balancer check` names the bad file at
//! its line; the client CA bundle read the same way.

use std::{path::PathBuf, time::SystemTime};

use super::Problems;
use crate::{
    config::{
        defaults::{DEFAULT_CLIENT_SUBJECT_HEADER, DEFAULT_HANDSHAKE_TIMEOUT},
        model::Mode,
        raw::RawTls,
        tls::{CertificateFiles, ClientAuth, ClientAuthMode, TlsListener},
    },
    tls::{
        certs::{self, CertError},
        provider,
    },
};
use http::HeaderName;

/// The `tls` block of listener `i`, in `mode`.
pub(super) fn listener(i: usize, raw: &RawTls, mode: Mode, p: &mut Problems) -> TlsListener {
    let at = |f: &str| format!("listeners[{i}].tls.{f}");
    if mode != Mode::Http {
        p.add(
            format!("listeners[{i}].tls"),
            format!(
                "`tls` needs `mode: http` (this listener is `{mode}`; route TLS without terminating it with `routes` matching `sni`)"
            ),
        );
    }
    if raw.certificates.is_empty() {
        p.add(
            at("certificates"),
            "needs at least one `{ cert, key }` (the first is the default)",
        );
    }
    let provider = provider();
    let now = SystemTime::now();
    let certificates = raw
        .certificates
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let files = CertificateFiles {
                cert: PathBuf::from(c.cert.trim()),
                key: PathBuf::from(c.key.trim()),
            };
            if let Err(e) = certs::load(&files.cert, &files.key, &provider, now) {
                let field = match &e {
                    CertError::NoKey { .. } | CertError::BadKey { .. } => "key",
                    CertError::Read { path, .. } if *path == files.key => "key",
                    _ => "cert",
                };
                p.add(at(&format!("certificates[{j}].{field}")), e.to_string());
            }
            files
        })
        .collect();
    let client_auth = match (&raw.client_ca, raw.client_auth) {
        (None, None) => None,
        (None, Some(_)) => {
            p.add(
                at("client_auth"),
                "needs `client_ca`, the CA bundle client certificates are verified against",
            );
            None
        }
        (Some(ca), mode) => {
            let ca = PathBuf::from(ca.trim());
            if let Err(e) = certs::ca_bundle(&ca) {
                p.add(at("client_ca"), e.to_string());
            }
            Some(ClientAuth {
                ca,
                required: mode.unwrap_or(ClientAuthMode::Required) == ClientAuthMode::Required,
                subject_header: subject_header(raw, &at, p),
            })
        }
    };
    if raw.client_ca.is_none() && raw.client_subject_header.is_some() {
        p.add(
            at("client_subject_header"),
            "needs `client_ca` (there is no client certificate to report)",
        );
    }
    TlsListener {
        certificates,
        strict_sni: raw.strict_sni.unwrap_or(false),
        client_auth,
        handshake_timeout: p.duration(
            &at("handshake_timeout"),
            raw.handshake_timeout.as_ref(),
            DEFAULT_HANDSHAKE_TIMEOUT,
        ),
    }
}

fn subject_header(raw: &RawTls, at: &dyn Fn(&str) -> String, p: &mut Problems) -> HeaderName {
    let text = raw
        .client_subject_header
        .as_deref()
        .unwrap_or(DEFAULT_CLIENT_SUBJECT_HEADER);
    HeaderName::from_bytes(text.trim().as_bytes()).unwrap_or_else(|_| {
        p.add(
            at("client_subject_header"),
            format!("`{text}` is not a valid header name"),
        );
        HeaderName::from_static(DEFAULT_CLIENT_SUBJECT_HEADER)
    })
}

#[cfg(test)]
mod tests;
