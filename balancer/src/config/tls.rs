//! The validated TLS settings: an `http` listener's `tls` block (the
//! certificates it serves, picked by SNI from each certificate's own
//! names, the first the default; whether an unknown name is refused;
//! client certificates), a pool's `tls` block (TLS to its backends), and
//! the SNI routes of TCP listeners that pass TLS through.

use std::{path::PathBuf, time::Duration};

use http::HeaderName;

use super::http::HostMatch;

/// TLS termination on one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    /// Certificate and key files, in file order (the first is the default).
    pub certificates: Vec<CertificateFiles>,
    /// Refuse handshakes with no SNI or a name no certificate serves.
    pub strict_sni: bool,
    /// Client certificates, when asked for.
    pub client_auth: Option<ClientAuth>,
    /// Time for a client to finish its handshake.
    pub handshake_timeout: Duration,
}

/// One certificate chain and its key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertificateFiles {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM key (PKCS#8, RSA or EC).
    pub key: PathBuf,
}

/// Client certificates: verified against `ca`, required or optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM bundle of the CAs that sign client certificates.
    pub ca: PathBuf,
    /// Whether a client without a certificate is refused.
    pub required: bool,
    /// The header that carries the verified subject to backends (a value
    /// sent by the client under that name is always removed).
    pub subject_header: HeaderName,
}

/// `client_auth`: whether a client must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// Refused without one.
    Required,
    /// Served without one; verified when given.
    Optional,
}

/// One route of a TLS passthrough listener: connections whose ClientHello
/// names a matching server go to `pool`, TLS untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SniRoute {
    /// Its name in logs (`routes[].name`, else `route<index>`).
    pub name: String,
    /// The server names it takes: exact, or a `*.` suffix.
    pub sni: HostMatch,
    /// Index into the config's pools.
    pub pool: usize,
}

/// `pools[].tls`: the HTTP layer speaks TLS to the pool's backends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolTls {
    /// The name sent as SNI and that certificates are verified for;
    /// `None`: no SNI, and certificates are verified for the backend's IP
    /// address.
    pub sni: Option<String>,
    /// The CA bundle backends' certificates are verified against; `None`
    /// only when `verify` is off.
    pub ca: Option<PathBuf>,
    /// Whether backends' certificates are verified (on unless the file
    /// says `verify: false`).
    pub verify: bool,
    /// A client certificate shown to backends that ask for one.
    pub client_certificate: Option<CertificateFiles>,
}
