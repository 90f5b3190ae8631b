//! TLS termination for `http` listeners, on rustls with the aws-lc-rs
//! provider: TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`, certificates
//! picked by SNI ([`resolve`]) from PEM files ([`certs`]), session IDs and
//! tickets for resumption (kept across reloads, so a reload does not force
//! every client into a full handshake), optional client certificates.
//!
//! A [`Terminator`] is built from the files at start and at every reload,
//! so a reload swaps certificates: handshakes that start afterwards use the
//! new ones, established connections keep theirs. A file that cannot be
//! served refuses the reload and the old terminator keeps serving.
//!
//! The provider is aws-lc-rs, chosen by measurement (`cargo xtask bench
//! tls`, docs/bench/tls.md): it builds with only a C compiler here, costs
//! the same as ring for RSA and less for P-256 signatures, and with the
//! AES-128-GCM/SHA-256 suites first (see [`provider`]) a TLS 1.3 handshake
//! costs the server about half of what the default order costs.

pub mod certs;
pub mod hello;
pub mod peek;
pub mod resolve;
#[cfg(test)]
pub(crate) mod testing;
pub mod upstream;
pub mod watch;

use std::{sync::Arc, time::SystemTime};

use rustls::{
    CipherSuite, HandshakeKind, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    server::{
        ProducesTickets, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier,
    },
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use self::{
    certs::{CertError, Loaded},
    resolve::Table,
};
use crate::{
    config::tls::TlsListener,
    runtime::tls_stats::{HandshakeFailure, Served, TlsStats},
};

/// Sessions remembered for resumption by session ID, per listener.
const SESSION_CACHE: usize = 20_000;

/// The crypto provider every TLS config uses: aws-lc-rs with its default
/// suites, AES-128-GCM with SHA-256 first. Listeners pick suites in this
/// order (not the client's), and SHA-256 runs on dedicated instructions in
/// current x86 and ARM CPUs where SHA-384 does not: a TLS 1.3 handshake's
/// key schedule is a few dozen HMACs, and bulk AES-128 is a third cheaper
/// than AES-256 (`cargo xtask bench tls` measures both orders).
#[must_use]
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // A stable sort keeps the provider's order within each rank (rustls
    // looks only at the suites of the version agreed).
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        _ => 1,
    });
    p
}

/// Why a listener's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The client CA bundle holds nothing rustls can verify with.
    #[error("the client CA bundle {path} cannot be used: {reason}")]
    ClientCa {
        /// The file.
        path: String,
        /// rustls' reason.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

/// Resumption state a listener keeps across reloads.
#[derive(Clone)]
pub struct Resumption {
    cache: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
}

impl Resumption {
    /// A fresh session cache and ticket key.
    pub fn new() -> Result<Self, TlsError> {
        Ok(Self {
            cache: ServerSessionMemoryCache::new(SESSION_CACHE),
            tickets: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| TlsError::Rustls(e.to_string()))?,
        })
    }
}

/// What a completed handshake tells the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    /// The name the client asked for.
    pub sni: Option<String>,
    /// The protocol agreed by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// The verified client certificate's subject (RFC 4514 form).
    pub subject: Option<String>,
}

/// A listener's TLS: the handshake settings and the certificates loaded.
pub struct Terminator {
    acceptor: TlsAcceptor,
    /// The settings it was built from.
    pub settings: TlsListener,
    /// The certificates, as loaded (for expiry in status and metrics).
    pub certs: Vec<Loaded>,
    /// Its session cache and ticket keys.
    pub resumption: Resumption,
}

impl Terminator {
    /// Reads the certificate files of `settings` and builds the handshake
    /// settings, resuming sessions of `resumption`.
    pub fn new(settings: &TlsListener, resumption: Resumption) -> Result<Self, TlsError> {
        let provider = Arc::new(provider());
        let now = SystemTime::now();
        let certs = settings
            .certificates
            .iter()
            .map(|c| certs::load(&c.cert, &c.key, &provider, now))
            .collect::<Result<Vec<_>, _>>()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match &settings.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => {
                let client_ca = |reason: String| TlsError::ClientCa {
                    path: auth.ca.display().to_string(),
                    reason,
                };
                let mut roots = RootCertStore::empty();
                for ca in certs::ca_bundle(&auth.ca)? {
                    roots.add(ca).map_err(|e| client_ca(e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth.required {
                    verifier.build()
                } else {
                    verifier.allow_unauthenticated().build()
                };
                builder.with_client_cert_verifier(verifier.map_err(|e| client_ca(e.to_string()))?)
            }
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(Table::new(&certs, settings.strict_sni)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's order of cipher suites, not the client's: a client
        // preferring a weaker suite of those offered does not get it.
        config.ignore_client_order = true;
        config.session_storage = resumption.cache.clone();
        config.ticketer = resumption.tickets.clone();
        config.send_tls13_tickets = 2;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            settings: settings.clone(),
            certs,
            resumption,
        })
    }

    /// The certificates it serves, for status and metrics.
    #[must_use]
    pub fn served(&self) -> Vec<Served> {
        self.settings
            .certificates
            .iter()
            .zip(&self.certs)
            .map(|(files, c)| Served {
                file: files.cert.display().to_string(),
                names: c.names.clone(),
                not_after: c.not_after,
            })
            .collect()
    }

    /// Completes the handshake on `io` within the handshake timeout,
    /// counting it in `stats`.
    pub async fn accept<IO>(&self, io: IO, stats: &TlsStats) -> Option<(TlsStream<IO>, Handshake)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let done = tokio::time::timeout(self.settings.handshake_timeout, self.acceptor.accept(io));
        let stream = match done.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stats.failed(HandshakeFailure::of(&e));
                return None;
            }
            Err(_) => {
                stats.failed(HandshakeFailure::Timeout);
                return None;
            }
        };
        let (_, conn) = stream.get_ref();
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let hs = Handshake {
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            subject: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| certs::subject(leaf)),
        };
        stats.completed(resumed, hs.sni.as_deref());
        Some((stream, hs))
    }
}
