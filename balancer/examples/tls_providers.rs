//! The server's CPU cost of one TLS handshake with each rustls crypto
//! provider (aws-lc-rs and ring, each in its default suite order, and
//! balancer's: aws-lc-rs with AES-128-GCM/SHA-256 first), in memory: no
//! sockets, no kernel, one core. Client and server exchange their flights
//! through buffers; only the server's calls are timed. The client is the
//! same for all (`support/unchecked.rs`: aws-lc-rs, X25519, no checks, its suites in
//! rustls' default order) and every server picks suites in its own order,
//! so the figures differ by the server's provider alone.
//!
//! `tls_providers HANDSHAKES` prints one JSON line: per provider, key kind
//! (ECDSA P-256, RSA 2048) and version (1.3, 1.2), the server's
//! microseconds per full handshake, and per resumed one for TLS 1.3.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use rustls::{
    ClientConfig, ClientConnection, ServerConfig, ServerConnection,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};

#[path = "support/unchecked.rs"]
mod unchecked;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, n] = args.as_slice() else {
        bail!("usage: tls_providers HANDSHAKES");
    };
    let n: u32 = n.parse().context("HANDSHAKES")?;
    let mut out = serde_json::Map::new();
    for (kind, alg) in [
        ("ecdsa", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("rsa", &rcgen::PKCS_RSA_SHA256),
    ] {
        let (chain, key) = certificate(alg)?;
        for (provider_name, provider) in [
            ("aws_lc_rs", rustls::crypto::aws_lc_rs::default_provider()),
            ("ring", rustls::crypto::ring::default_provider()),
            ("balancer", balancer::tls::provider()),
        ] {
            for (version_name, version) in [
                ("1.3", &rustls::version::TLS13),
                ("1.2", &rustls::version::TLS12),
            ] {
                let server = server(provider.clone(), version, &chain, &key)?;
                let full = per_handshake(&server, &client(version, false)?, n)?;
                out.insert(
                    format!("{provider_name}.{kind}.tls{version_name}.full_us"),
                    serde_json::json!(full.as_secs_f64() * 1e6),
                );
                if version_name == "1.3" {
                    let resumed = per_handshake(&server, &client(version, true)?, n)?;
                    out.insert(
                        format!("{provider_name}.{kind}.tls{version_name}.resumed_us"),
                        serde_json::json!(resumed.as_secs_f64() * 1e6),
                    );
                }
            }
        }
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// A self-signed certificate of `alg` for `bench.test`.
fn certificate(
    alg: &'static rcgen::SignatureAlgorithm,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key = rcgen::KeyPair::generate_for(alg)?;
    let cert = rcgen::CertificateParams::new(vec!["bench.test".to_owned()])?.self_signed(&key)?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

fn server(
    provider: CryptoProvider,
    version: &'static rustls::SupportedProtocolVersion,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])?
        .with_no_client_auth()
        .with_single_cert(chain.to_vec(), key.clone_key())?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

fn client(
    version: &'static rustls::SupportedProtocolVersion,
    resume: bool,
) -> Result<Arc<ClientConfig>> {
    let mut config = unchecked::client_config(version)?;
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The server's time per handshake over `n` handshakes (after one that
/// warms up, and gives a resuming client its first session).
fn per_handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    n: u32,
) -> Result<Duration> {
    handshake(server, client)?;
    let mut total = Duration::ZERO;
    for _ in 0..n {
        total += handshake(server, client)?;
    }
    Ok(total / n.max(1))
}

/// One handshake in memory; the time the server spent in it.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> Result<Duration> {
    let name = ServerName::try_from("bench.test")?;
    let mut c = ClientConnection::new(client.clone(), name)?;
    let mut spent = Duration::ZERO;
    let started = Instant::now();
    let mut s = ServerConnection::new(server.clone())?;
    spent += started.elapsed();
    let mut buf = Vec::new();
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            // Let the client take the TLS 1.3 tickets the server sent.
            buf.clear();
            while s.wants_write() {
                let t = Instant::now();
                s.write_tls(&mut buf)?;
                spent += t.elapsed();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice())?;
                c.process_new_packets()?;
            }
            return Ok(spent);
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf)?;
        }
        let t = Instant::now();
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd)?;
        }
        s.process_new_packets()?;
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back)?;
        }
        spent += t.elapsed();
        let mut rd = back.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd)?;
        }
        c.process_new_packets()?;
    }
    bail!("the handshake did not finish in 10 flights")
}
