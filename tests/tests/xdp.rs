//! The XDP plane end to end: the balancer's program attached natively to
//! its veth, real clients (curl, plain sockets) and real backends (nginx,
//! socat), in both forwarding modes. Each test builds its own namespaces.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use balancer_tests::{
    Process,
    client::{http_get, tally},
    l2::{L2, VIP, backend},
    nginx,
};

fn config(forwarding: &str, port: u16, protocol: &str) -> String {
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{VIP}:{port}\", protocol: {protocol}, mode: xdp, pool: p }}
pools:
  - name: p
    algorithm: maglev
    backends:
      - {{ address: \"{}:{port}\" }}
      - {{ address: \"{}:{port}\" }}
      - {{ address: \"{}:{port}\" }}
xdp: {{ interface: eth0, forwarding: {forwarding} }}
",
        backend(0),
        backend(1),
        backend(2)
    )
}

/// nginx on every backend, listening on the VIP (which they hold on lo).
fn nginx_on_vip(t: &L2) -> Vec<Process> {
    (0..3)
        .map(|i| {
            nginx::start(
                &t.backends[i],
                t.dir.path(),
                &format!("backend-{}", i + 1),
                &[L2::vip(80)],
            )
        })
        .collect()
}

/// 90 connections from the client, each a full HTTP exchange: all complete,
/// all three backends answer, and a connection that carries several
/// requests keeps its backend (else it would break mid-way).
fn check_http(t: &L2) {
    let vip = L2::vip(80);
    let answers: Vec<String> = t.client.enter(|| {
        (0..90)
            .map(|i| http_get(vip, None).unwrap_or_else(|e| panic!("connection {i}: {e}")))
            .collect()
    });
    let spread = tally(answers);
    assert_eq!(spread.len(), 3, "every backend served: {spread:?}");
    assert!(
        spread.values().all(|&n| n >= 10),
        "spread too uneven for Maglev over 3 equal backends: {spread:?}"
    );
    // curl, several requests on one keep-alive connection.
    let out = t.client.run(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            &format!("http://{vip}/"),
            &format!("http://{vip}/"),
            &format!("http://{vip}/"),
        ],
    );
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 3, "{out}");
    assert!(
        names.iter().all(|n| *n == names[0]),
        "one connection, one backend: {names:?}"
    );
}

#[test]
fn dsr_balances_tcp_in_the_kernel() {
    let t = L2::new(3);
    let _nginx = nginx_on_vip(&t);
    let lb = t.start_balancer(&config("dsr", 80, "tcp"), 1);
    assert!(
        lb.output().contains("plane=\"xdp\"") || lb.output().contains("plane=xdp"),
        "{}",
        lb.output()
    );
    assert!(
        lb.output().contains("attach=native"),
        "veth supports native XDP: {}",
        lb.output()
    );
    check_http(&t);
}

#[test]
fn ipip_balances_tcp_through_the_decapsulator() {
    let t = L2::new(3);
    let _decap: Vec<Process> = (0..3).map(|i| t.start_decap(i)).collect();
    let _nginx = nginx_on_vip(&t);
    let _lb = t.start_balancer(&config("ipip", 80, "tcp"), 1);
    check_http(&t);
}

#[test]
fn dsr_balances_udp_and_replies_come_from_the_vip() {
    let t = L2::new(3);
    let _servers: Vec<Process> = (0..3)
        .map(|i| {
            let mut cmd = t.backends[i].command("socat");
            cmd.args([
                &format!("UDP-RECVFROM:53,bind={VIP},fork"),
                &format!("SYSTEM:read -r x; printf backend-{}=%s $x", i + 1),
            ]);
            Process::spawn("socat", cmd, t.dir.path().join(format!("udp-{i}.log")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let _lb = t.start_balancer(&config("dsr", 53, "udp"), 1);
    let vip: SocketAddr = L2::vip(53);
    let names: Vec<String> = t.client.enter(|| {
        (0..60)
            .map(|i| {
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                s.send_to(format!("q{i}").as_bytes(), vip).expect("send");
                let mut buf = [0u8; 128];
                let (n, from) = s
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("query {i}: {e}"));
                assert_eq!(from, vip, "the backend answers from the VIP");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (name, echo) = text.split_once('=').expect("name=echo");
                assert_eq!(echo, format!("q{i}"));
                name.to_owned()
            })
            .collect()
    });
    let spread: BTreeMap<String, usize> = tally(names);
    assert_eq!(spread.len(), 3, "{spread:?}");
}
