//! Certificates swapped under load: 100 reloads, each serving the other of
//! two certificates, while clients make 200 full handshakes a second; no
//! handshake fails, and both certificates are seen.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use balancer_tests::{
    Topology,
    certs::{Ca, answering_tls_listener},
    topology::VIP4,
};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};

const SWAPS: usize = 100;
/// Handshakes per second, over all client threads.
const RATE: u64 = 200;
const CLIENTS: u64 = 4;

/// A client that trusts `ca` and never resumes (every handshake is full).
fn client_config(ca: &std::path::Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca file") {
        roots.add(c.expect("ca pem")).expect("ca cert");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One full handshake and request; the leaf certificate the server showed.
fn handshake(config: &Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect((VIP4, 443)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("swap.example.test").expect("name");
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: swap.example.test\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("handshake or write: {e}"))?;
    let mut answer = Vec::new();
    // The server closes after its answer; a TLS close_notify ends the read.
    let _ = tls.read_to_end(&mut answer);
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answer: {:?}", String::from_utf8_lossy(&answer)));
    }
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    Ok(leaf.as_ref().to_vec())
}

#[test]
fn a_hundred_certificate_swaps_under_200_handshakes_a_second_fail_none() {
    let t = Topology::new(1);
    let ca = Ca::new(&t.path("certs"));
    let pairs = [
        ca.server("one", &["swap.example.test"]),
        ca.server("two", &["swap.example.test"]),
    ];
    let mut lb = t.start_balancer(&answering_tls_listener(&pairs[0], "ok"), 1);
    let client = client_config(&ca.cert);
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let (failures, seen) = std::thread::scope(|s| {
        let load: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    t.client.enter(|| {
                        let pace = Duration::from_micros(1_000_000 * CLIENTS / RATE);
                        let started = Instant::now();
                        let (mut failures, mut seen) = (Vec::new(), Vec::new());
                        let mut n = 0u32;
                        // Bounded: stops when the swaps are over, or after a minute.
                        while !stop.load(Ordering::Relaxed)
                            && started.elapsed() < Duration::from_mins(1)
                        {
                            match handshake(&client) {
                                Ok(leaf) if !seen.contains(&leaf) => seen.push(leaf),
                                Ok(_) => {}
                                Err(e) => failures.push(e),
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                            let due = started + pace * n;
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        }
                        (failures, seen)
                    })
                })
            })
            .collect();
        for i in 1..=SWAPS {
            std::thread::sleep(Duration::from_millis(100));
            balancer_tests::write_config(
                t.dir.path(),
                &answering_tls_listener(&pairs[i % 2], "ok"),
            );
            lb.signal(libc::SIGHUP);
            lb.wait_for("reloaded `", i, Duration::from_secs(10));
        }
        stop.store(true, Ordering::Relaxed);
        load.into_iter().map(|h| h.join().expect("client")).fold(
            (Vec::new(), Vec::new()),
            |(mut f, mut s), (fi, si)| {
                f.extend(fi);
                for leaf in si {
                    if !s.contains(&leaf) {
                        s.push(leaf);
                    }
                }
                (f, s)
            },
        )
    });
    let total = done.load(Ordering::Relaxed);
    assert!(total >= 1000, "only {total} handshakes during the swaps");
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(seen.len(), 2, "both certificates were served");
}
