//! A pool's `tls` block (TLS from the HTTP layer to its backends): a CA
//! bundle to verify against unless `verify: false` says otherwise, a
//! server name that is a DNS name, a client certificate whose key belongs
//! to it; every file loaded now, so `balancer check` names the bad one at
//! its line. Then what may use such a pool: only `http` listeners (a TCP
//! listener splices bytes it never reads), and `h2` (HTTP/2 by ALPN) only
//! with `tls`, `h2c` only without.

use std::{path::PathBuf, time::SystemTime};

use rustls::pki_types::ServerName;

use super::Problems;
use crate::{
    config::{
        http::UpstreamVersion,
        model::{HealthCheck, Listener, Mode, Pool, Probe},
        raw::RawPoolTls,
        tls::{CertificateFiles, PoolTls},
    },
    tls::{
        certs::{self, CertError},
        provider,
    },
};

/// The `tls` block of a pool, at `at` (`pools[i].tls`).
pub(super) fn pool(at: &str, raw: &RawPoolTls, p: &mut Problems) -> PoolTls {
    let field = |f: &str| format!("{at}.{f}");
    let verify = raw.verify.unwrap_or(true);
    let ca = raw.ca.as_ref().map(|c| PathBuf::from(c.trim()));
    match &ca {
        Some(path) => {
            if let Err(e) = certs::ca_bundle(path) {
                p.add(field("ca"), e.to_string());
            }
        }
        None if verify => p.add(
            field("ca"),
            "missing: backends' certificates are verified against this CA bundle (PEM); `verify: false` turns verification off instead",
        ),
        None => {}
    }
    let sni = raw.sni.as_ref().map(|s| s.trim().to_ascii_lowercase());
    if let Some(name) = &sni
        && !matches!(
            ServerName::try_from(name.as_str()),
            Ok(ServerName::DnsName(_))
        )
    {
        p.add(
            field("sni"),
            format!("`{name}` is not a DNS name (the name sent to backends and verified in their certificates)"),
        );
    }
    let client_certificate = match (&raw.cert, &raw.key) {
        (None, None) => None,
        (Some(_), None) => {
            p.add(
                field("key"),
                "missing: `cert` needs the key that belongs to it",
            );
            None
        }
        (None, Some(_)) => {
            p.add(
                field("cert"),
                "missing: `key` needs the certificate it belongs to",
            );
            None
        }
        (Some(cert), Some(key)) => {
            let files = CertificateFiles {
                cert: PathBuf::from(cert.trim()),
                key: PathBuf::from(key.trim()),
            };
            if let Err(e) = certs::load(&files.cert, &files.key, &provider(), SystemTime::now()) {
                let which = match &e {
                    CertError::NoKey { .. } | CertError::BadKey { .. } => "key",
                    CertError::Read { path, .. } if *path == files.key => "key",
                    _ => "cert",
                };
                p.add(field(which), e.to_string());
            }
            Some(files)
        }
    };
    PoolTls {
        sni,
        ca,
        verify,
        client_certificate,
    }
}

/// `pools[i].http` against `pools[i].tls`: HTTP/2 to a TLS pool is `h2`
/// (agreed by ALPN), to a cleartext one `h2c`; a UDP check cannot speak
/// the pool's TLS.
pub(super) fn version(
    at: &dyn Fn(&str) -> String,
    version: UpstreamVersion,
    tls: bool,
    health: Option<&HealthCheck>,
    p: &mut Problems,
) {
    match (version, tls) {
        (UpstreamVersion::H2, false) => p.add(
            at("http"),
            "`h2` is HTTP/2 over TLS (agreed by ALPN) and needs the pool's `tls`; cleartext HTTP/2 is `h2c`",
        ),
        (UpstreamVersion::H2c, true) => p.add(
            at("http"),
            "`h2c` is cleartext HTTP/2; to a pool with `tls` use `h2`",
        ),
        _ => {}
    }
    if tls && health.is_some_and(|h| matches!(h.probe, Probe::Udp(_))) {
        p.add(
            at("health.kind"),
            "a pool with `tls` is checked over TLS: use `tcp` (a handshake) or `http`",
        );
    }
}

/// Every listener that is not `http` must not send connections to a pool
/// with `tls`: its bytes pass through unread.
pub(super) fn listeners(listeners: &[Listener], pools: &[Pool], p: &mut Problems) {
    for (i, l) in listeners.iter().enumerate() {
        if l.mode == Mode::Http {
            continue;
        }
        let used = l
            .pool
            .map(|x| (format!("listeners[{i}].pool"), x))
            .into_iter()
            .chain(
                l.sni_routes
                    .iter()
                    .enumerate()
                    .map(|(r, route)| (format!("listeners[{i}].routes[{r}].pool"), route.pool)),
            );
        for (field, x) in used {
            if let Some(pool) = pools.get(x).filter(|pool| pool.tls.is_some()) {
                p.add(
                    field,
                    format!(
                        "pool `{}` has `tls`, which the HTTP layer speaks to backends; a `{}` listener passes bytes through unread (use `mode: http`, or a pool without `tls`)",
                        pool.name, l.mode
                    ),
                );
            }
        }
    }
}
