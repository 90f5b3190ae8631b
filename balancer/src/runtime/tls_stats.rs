//! A TLS listener's handshake counters: completed, resumed, failed by
//! reason, and completed by the name the client asked for (bounded: names
//! past the first 1,000 seen are counted under `other`, so a client
//! inventing names cannot grow the table).

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

/// Distinct SNI values counted by name.
const MAX_NAMES: usize = 1_000;

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HandshakeFailure {
    /// No certificate for the name asked (with `strict_sni`), or none at all.
    NoCertificate,
    /// The client offered no version or cipher suite we accept (TLS 1.0,
    /// 1.1, or weak suites only).
    ProtocolVersion,
    /// The client sent an alert (it did not trust our certificate, say).
    ClientAlert,
    /// A client certificate was missing or did not verify.
    ClientCertificate,
    /// The client did not finish within the handshake timeout.
    Timeout,
    /// Anything else: bytes that are not TLS, a reset.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in metric order.
    pub const ALL: [Self; 6] = [
        Self::NoCertificate,
        Self::ProtocolVersion,
        Self::ClientAlert,
        Self::ClientCertificate,
        Self::Timeout,
        Self::Other,
    ];

    /// Its label in metrics and status.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::ProtocolVersion => "protocol_version",
            Self::ClientAlert => "client_alert",
            Self::ClientCertificate => "client_certificate",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }

    /// The reason behind a failed accept (tokio-rustls wraps rustls'
    /// error in an `io::Error`).
    #[must_use]
    pub fn of(e: &io::Error) -> Self {
        use rustls::{Error, PeerIncompatible};
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
            return Self::Other;
        };
        match tls {
            Error::AlertReceived(_) => Self::ClientAlert,
            Error::NoCertificatesPresented | Error::InvalidCertificate(_) => {
                Self::ClientCertificate
            }
            Error::PeerIncompatible(
                PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::Tls13RequiredForQuic
                | PeerIncompatible::NoCipherSuitesInCommon,
            ) => Self::ProtocolVersion,
            Error::General(text) if text.contains("certificate") => Self::NoCertificate,
            _ => Self::Other,
        }
    }
}

/// A certificate a listener serves, for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Its certificate file.
    pub file: String,
    /// The names it serves.
    pub names: Vec<String>,
    /// When it expires.
    pub not_after: SystemTime,
}

/// Handshake counters of one listener, and the certificates it serves.
#[derive(Default)]
pub struct TlsStats {
    handshakes: AtomicU64,
    resumed: AtomicU64,
    failed: [AtomicU64; HandshakeFailure::ALL.len()],
    by_name: Mutex<BTreeMap<String, u64>>,
    certificates: Mutex<Vec<Served>>,
}

impl TlsStats {
    /// The certificates now served (at start and after each reload).
    pub fn serve(&self, certificates: Vec<Served>) {
        if let Ok(mut c) = self.certificates.lock() {
            *c = certificates;
        }
    }

    /// The certificates served.
    #[must_use]
    pub fn certificates(&self) -> Vec<Served> {
        self.certificates
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// A handshake completed (`resumed` or full) for `sni`.
    pub fn completed(&self, resumed: bool, sni: Option<&str>) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let name = sni.unwrap_or("none");
        if let Ok(mut names) = self.by_name.lock() {
            if let Some(n) = names.get_mut(name) {
                *n += 1;
            } else if names.len() < MAX_NAMES {
                names.insert(name.to_owned(), 1);
            } else {
                *names.entry("other".to_owned()).or_default() += 1;
            }
        }
    }

    /// A handshake failed.
    pub fn failed(&self, why: HandshakeFailure) {
        let i = HandshakeFailure::ALL
            .iter()
            .position(|w| *w == why)
            .unwrap_or(HandshakeFailure::ALL.len() - 1);
        self.failed[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes completed, and how many of them resumed a session.
    #[must_use]
    pub fn handshakes(&self) -> (u64, u64) {
        (
            self.handshakes.load(Ordering::Relaxed),
            self.resumed.load(Ordering::Relaxed),
        )
    }

    /// Failures by reason.
    #[must_use]
    pub fn failures(&self) -> Vec<(HandshakeFailure, u64)> {
        HandshakeFailure::ALL
            .iter()
            .zip(&self.failed)
            .map(|(w, n)| (*w, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Completed handshakes by SNI (`none` without one).
    #[must_use]
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        self.by_name.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
