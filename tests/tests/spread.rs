//! Spread over real nginx backends, per algorithm, over IPv4 and IPv6.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use balancer_tests::{
    Topology,
    client::{connect, http_get, tally},
    config::simple,
    nginx,
    topology::{VIP4, backend_addr},
};

const WEIGHTS: [u32; 3] = [200, 100, 100];

fn backends(v6: bool) -> Vec<(String, u32)> {
    (0..3)
        .map(|i| (backend_addr(i, 80, v6).to_string(), WEIGHTS[i]))
        .collect()
}

fn counts(m: &BTreeMap<String, usize>) -> [usize; 3] {
    [1, 2, 3].map(|i| m.get(&format!("backend-{i}")).copied().unwrap_or(0))
}

/// A keep-alive GET whose connection stays open: the backend keeps counting
/// it as active, which is what load-aware algorithms look at.
fn held_get(vip: SocketAddr) -> (TcpStream, String) {
    let mut s = connect(vip, None).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n").as_bytes())
        .expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "backend closed a keep-alive connection");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && body.ends_with('\n')
        {
            return (s, body.trim().to_owned());
        }
    }
}

#[test]
fn every_algorithm_spreads_over_real_backends() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, true);
    let vip: SocketAddr = (VIP4, 80).into();
    let sources = t.add_client_addresses(60);
    for algorithm in [
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "two_choices",
        "source_hash",
        "maglev",
    ] {
        let lb = t.start_balancer(
            &simple(
                "web",
                "198.18.0.10:80",
                "tcp",
                &[],
                algorithm,
                backends(false),
            ),
            1,
        );
        let got = t.client.enter(|| match algorithm {
            "least_connections" | "two_choices" => {
                let n = if algorithm == "least_connections" {
                    40
                } else {
                    120
                };
                let held: Vec<_> = (0..n).map(|_| held_get(vip)).collect();
                counts(&tally(held.into_iter().map(|(_, name)| name)))
            }
            "source_hash" => {
                let mut per_source = Vec::new();
                for &src in &sources {
                    let a = http_get(vip, Some(src.into())).expect("request");
                    let b = http_get(vip, Some(src.into())).expect("request");
                    assert_eq!(a, b, "source_hash: {src} moved between requests");
                    per_source.push(a);
                }
                counts(&tally(per_source))
            }
            _ => {
                let n = if algorithm == "round_robin" { 300 } else { 400 };
                counts(&tally(
                    (0..n).map(|_| http_get(vip, None).expect("request")),
                ))
            }
        });
        let total: usize = got.iter().sum();
        match algorithm {
            "round_robin" => assert_eq!(got, [100, 100, 100], "{algorithm}"),
            "weighted_round_robin" => assert_eq!(got, [200, 100, 100], "{algorithm}"),
            "least_connections" => assert_eq!(got, [20, 10, 10], "{algorithm}"),
            _ => {
                // Hash and sampling algorithms: the 2:1:1 shape within a
                // tolerance that fits the sample size.
                let tolerance = if algorithm == "source_hash" {
                    0.5
                } else {
                    0.25
                };
                for (i, &c) in got.iter().enumerate() {
                    let expected = total as f64 * f64::from(WEIGHTS[i]) / 400.0;
                    assert!(
                        (c as f64 - expected).abs() <= expected * tolerance,
                        "{algorithm}: backend-{} got {c} of {total}, expected about {expected:.0} ({got:?})",
                        i + 1
                    );
                }
            }
        }
        drop(lb);
    }
}

#[test]
fn ipv6_listener_reaches_ipv6_backends() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, true);
    let cfg = simple(
        "web",
        "[fd00::10]:80",
        "tcp",
        &[],
        "round_robin",
        backends(true),
    );
    let _lb = t.start_balancer(&cfg, 1);
    // curl as the real client, one new connection per request.
    let mut names = Vec::new();
    for _ in 0..9 {
        let body = t.client.run(
            "curl",
            &["-sS", "-g", "--max-time", "5", "http://[fd00::10]:80/"],
        );
        names.push(body.trim().to_owned());
    }
    assert_eq!(counts(&tally(names)), [3, 3, 3]);
}
