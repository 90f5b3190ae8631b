//! A closed-loop TLS handshake load generator for the TLS benchmark: each
//! of CONNECTIONS workers connects, completes a handshake, asks `GET /`
//! with `Connection: close`, reads the answer to its end and starts over,
//! for SECONDS. Every target gets the same client work: an X25519 key
//! exchange (the group every peer here speaks), no check of the certificate or of the
//! handshake signature (the server still signs: that is its cost being
//! measured; the client's checks would only share the two cores with it),
//! and the one TLS version asked for.
//!
//! `tls_load ADDR SNI VERSION MODE SECONDS CONNECTIONS` with VERSION `1.2`
//! or `1.3` and MODE `full` (no resumption) or `resumed` (each worker
//! resumes the session of its previous connection) prints one JSON line:
//! `{"handshakes": .., "resumed": .., "errors": .., "secs": .., "rate": ..}`
//! where `rate` counts completed exchanges per second. Bounded by SECONDS
//! plus a 5 s grace for exchanges in flight.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use rustls::{HandshakeKind, client::Resumption, pki_types::ServerName};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

#[path = "support/unchecked.rs"]
mod unchecked;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, sni, version, mode, seconds, connections] = args.as_slice() else {
        bail!("usage: tls_load ADDR SNI VERSION(1.2|1.3) MODE(full|resumed) SECONDS CONNECTIONS");
    };
    let addr: SocketAddr = addr.parse().context("ADDR")?;
    let name = ServerName::try_from(sni.clone()).context("SNI")?;
    let version = match version.as_str() {
        "1.2" => &rustls::version::TLS12,
        "1.3" => &rustls::version::TLS13,
        other => bail!("VERSION `{other}`: 1.2 or 1.3"),
    };
    let resumed = match mode.as_str() {
        "full" => false,
        "resumed" => true,
        other => bail!("MODE `{other}`: full or resumed"),
    };
    let secs: f64 = seconds.parse().context("SECONDS")?;
    let connections: usize = connections.parse().context("CONNECTIONS")?;
    let mut config = unchecked::client_config(version)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resumed {
        Resumption::in_memory_sessions(connections * 4)
    } else {
        Resumption::disabled()
    };
    let connector = TlsConnector::from(Arc::new(config));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(addr, name, connector, secs, connections))
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    resumed: AtomicU64,
    errors: AtomicU64,
}

async fn run(
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    secs: f64,
    connections: usize,
) -> Result<()> {
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (connector, name, counts) = (connector.clone(), name.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let grace = end + Duration::from_secs(5);
                let one = exchange(addr, name.clone(), &connector);
                match tokio::time::timeout_at(grace.into(), one).await {
                    Ok(Ok(kind)) => {
                        counts.handshakes.fetch_add(1, Ordering::Relaxed);
                        if kind == Some(HandshakeKind::Resumed) {
                            counts.resumed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Err(e)) => {
                        if counts.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("tls_load: first error: {e:#}");
                        }
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let handshakes = counts.handshakes.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "handshakes": handshakes,
            "resumed": counts.resumed.load(Ordering::Relaxed),
            "errors": counts.errors.load(Ordering::Relaxed),
            "secs": elapsed,
            "rate": handshakes as f64 / elapsed,
        })
    );
    Ok(())
}

/// One connection: handshake, one request, the answer to its end. The
/// handshake's kind.
async fn exchange(
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: &TlsConnector,
) -> Result<Option<HandshakeKind>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(512);
    // TLS 1.3 tickets arrive after the handshake: reading to the end
    // takes them in for the next connection to resume with.
    let _ = tls.read_to_end(&mut answer).await;
    if !(answer.starts_with(b"HTTP/1.") && answer.get(8..13) == Some(b" 200 ")) {
        bail!("answer: {}", String::from_utf8_lossy(&answer));
    }
    Ok(tls.get_ref().1.handshake_kind())
}
