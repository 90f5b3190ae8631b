//! UDP through the proxy: many client ports, replies from the VIP.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use balancer_tests::{
    Process, Topology,
    config::simple,
    topology::{VIP4, backend_addr},
};

#[test]
fn udp_requests_from_100_ports_get_replies_from_the_vip() {
    let t = Topology::new(3);
    // socat as the UDP server: one child per datagram, answering with the
    // backend's name and the request.
    let _servers: Vec<Process> = (0..3)
        .map(|i| {
            let mut cmd = t.backends[i].command("socat");
            cmd.args([
                &format!(
                    "UDP-RECVFROM:53,bind={},fork",
                    backend_addr(i, 53, false).ip()
                ),
                // One write, so the reply is one datagram.
                &format!("SYSTEM:read -r x; printf backend-{}=%s $x", i + 1),
            ]);
            Process::spawn("socat udp", cmd, t.path(&format!("udp-{i}.log")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let backends: Vec<_> = (0..3)
        .map(|i| (backend_addr(i, 53, false).to_string(), 100))
        .collect();
    let cfg = simple("dns", "198.18.0.10:53", "udp", &[], "round_robin", backends);
    let _lb = t.start_balancer(&cfg, 1);
    let vip: SocketAddr = (VIP4, 53).into();
    let answers: Vec<String> = t.client.enter(|| {
        let sockets: Vec<UdpSocket> = (0..100)
            .map(|_| UdpSocket::bind("0.0.0.0:0").expect("bind"))
            .collect();
        for (i, s) in sockets.iter().enumerate() {
            s.send_to(format!("ping-{i}").as_bytes(), vip)
                .expect("send");
        }
        sockets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut buf = [0u8; 256];
                let (n, from) = s
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("port {i}: no reply: {e}"));
                assert_eq!(from, vip, "reply must come from the VIP");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (name, echo) = text.split_once('=').expect("name=payload");
                assert_eq!(echo, format!("ping-{i}"));
                name.to_owned()
            })
            .collect()
    });
    let mut per_backend = BTreeMap::new();
    for a in answers {
        *per_backend.entry(a).or_insert(0) += 1;
    }
    assert_eq!(per_backend.values().sum::<i32>(), 100);
    assert_eq!(
        per_backend.len(),
        3,
        "every backend served some sessions: {per_backend:?}"
    );
}
