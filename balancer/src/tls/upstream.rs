//! TLS from the HTTP layer to a pool's backends (`pools[].tls`): rustls
//! as a client, certificates verified against the pool's CA bundle for
//! its `sni` (or, without one, the backend's IP address), unless the file
//! turned verification off; a client certificate for backends that ask;
//! ALPN `h2` for `h2` pools, `http/1.1` otherwise. A [`Connector`] is
//! built from the files at start and at every reload.

use std::{
    hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
    sign::CertifiedKey,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{TlsError, certs, provider};
use crate::{
    config::{http::UpstreamVersion, tls::PoolTls},
    runtime::failure::Failure,
};

/// TLS toward one pool's backends.
pub struct Connector {
    with_alpn: TlsConnector,
    /// The same without ALPN: health checks speak HTTP/1.1 whatever the
    /// pool speaks.
    plain: TlsConnector,
    name: Option<ServerName<'static>>,
    h2: bool,
    /// Tells connections of different TLS settings apart, so a kept-alive
    /// connection goes back only to requests of the same settings.
    pub id: u64,
}

impl Connector {
    /// Reads the files of `settings` and builds the client settings for a
    /// pool that speaks `version`.
    pub fn new(settings: &PoolTls, version: UpstreamVersion) -> Result<Self, TlsError> {
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = if settings.verify {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &settings.ca {
                for c in certs::ca_bundle(ca)? {
                    roots.add(c).map_err(|e| TlsError::ClientCa {
                        path: ca.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider.clone())))
        };
        let mut config = match &settings.client_certificate {
            None => builder.with_no_client_auth(),
            Some(files) => {
                let loaded = certs::load(&files.cert, &files.key, &provider, SystemTime::now())?;
                builder.with_client_cert_resolver(Arc::new(ClientCertificate(loaded.key)))
            }
        };
        let plain = TlsConnector::from(Arc::new(config.clone()));
        let h2 = version == UpstreamVersion::H2;
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let name = settings
            .sni
            .as_ref()
            .map(|n| ServerName::try_from(n.clone()))
            .transpose()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        Ok(Self {
            with_alpn: TlsConnector::from(Arc::new(config)),
            plain,
            name,
            h2,
            id: BuildHasherDefault::<DefaultHasher>::default().hash_one((settings, version)) | 1,
        })
    }

    /// The TLS handshake over `io` to `backend`, within `timeout`. For an
    /// `h2` pool the backend must agree to `h2` by ALPN.
    pub async fn connect<IO>(
        &self,
        io: IO,
        backend: SocketAddr,
        timeout: Duration,
    ) -> Result<TlsStream<IO>, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = handshake(&self.with_alpn, self.name_for(backend), io, timeout).await?;
        if self.h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Failure::Tls(
                "the backend did not agree to HTTP/2 by ALPN".to_owned(),
            ));
        }
        Ok(stream)
    }

    /// The TLS handshake of a health check (no ALPN: checks speak
    /// HTTP/1.1).
    pub async fn connect_check<IO>(
        &self,
        io: IO,
        backend: SocketAddr,
        timeout: Duration,
    ) -> Result<TlsStream<IO>, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        handshake(&self.plain, self.name_for(backend), io, timeout).await
    }

    fn name_for(&self, backend: SocketAddr) -> ServerName<'static> {
        self.name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(backend.ip().into()))
    }
}

async fn handshake<IO>(
    connector: &TlsConnector,
    name: ServerName<'static>,
    io: IO,
    timeout: Duration,
) -> Result<TlsStream<IO>, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, connector.connect(name, io)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Failure::Tls(reason(&e))),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// What went wrong in a handshake, in rustls' words when it was rustls.
fn reason(e: &std::io::Error) -> String {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// The one client certificate a pool shows to backends that ask.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `verify: false`: any certificate is taken, but the handshake's
/// signatures are still checked (so the connection is at least encrypted
/// to whoever holds the certificate's key).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
