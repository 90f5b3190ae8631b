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

/// UDP servers in the first `n` backends (see [`Topology::udp_backend`]).
fn udp_servers(t: &Topology, n: usize) -> Vec<Process> {
    (0..n).map(|i| t.udp_backend(i)).collect()
}

fn pool(n: usize) -> Vec<(String, u32)> {
    (0..n)
        .map(|i| (backend_addr(i, 53, false).to_string(), 100))
        .collect()
}

/// Sends `payload` from `s` to the VIP and returns the answering backend.
fn ask(s: &UdpSocket, payload: &str) -> String {
    let vip: SocketAddr = (VIP4, 53).into();
    s.send_to(payload.as_bytes(), vip).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    let (n, from) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{payload}: no reply: {e}"));
    assert_eq!(from, vip, "reply must come from the VIP");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (name, echo) = text.split_once('=').expect("name=payload");
    assert_eq!(echo, payload);
    name.to_owned()
}

#[test]
fn udp_requests_from_100_ports_get_replies_from_the_vip() {
    let t = Topology::new(3);
    let _servers = udp_servers(&t, 3);
    let backends = pool(3);
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
            .map(|(i, s)| ask(s, &format!("ping-{i}")))
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

/// A session lives while it is used. With round robin over three backends
/// and room for two sessions, a client whose session was evicted or expired
/// is placed anew and lands on a different backend than before.
#[test]
fn sessions_are_evicted_oldest_first_and_expire_when_idle() {
    let t = Topology::new(3);
    let _servers = udp_servers(&t, 3);
    let extra = ["max_sessions: 2", "idle_timeout: 1s"];
    let cfg = simple(
        "dns",
        "198.18.0.10:53",
        "udp",
        &extra,
        "round_robin",
        pool(3),
    );
    let _lb = t.start_balancer(&cfg, 1);
    t.client.enter(|| {
        // Sessions are aged in milliseconds: uses in the same one would tie
        // (the backends answer within a millisecond), so each ask waits a
        // few before the next.
        let ask = |s: &UdpSocket, payload: &str| {
            let answer = ask(s, payload);
            std::thread::sleep(Duration::from_millis(3));
            answer
        };
        let [a, b, c] = [0; 3].map(|_| UdpSocket::bind("0.0.0.0:0").expect("bind"));
        let a1 = ask(&a, "a1");
        let b1 = ask(&b, "b1");
        assert_eq!(ask(&a, "a2"), a1, "a live session keeps its backend");
        // c needs a third session: b, idle longest, is evicted.
        let c1 = ask(&c, "c1");
        // b needs one again (evicting a) and is placed anew: round robin
        // has moved on, so not where it was.
        assert_ne!(ask(&b, "b2"), b1, "b's session should have been evicted");
        // Idle past idle_timeout: c's session expires and c is placed anew.
        std::thread::sleep(Duration::from_millis(1600));
        let c2 = ask(&c, "c2");
        assert_ne!(c2, c1, "c's session should have expired");
        assert_eq!(ask(&c, "c3"), c2, "the new session sticks");
    });
}

/// A session follows its backend's state: a drained backend keeps it, a
/// disabled one loses it and the client's next datagram is placed on
/// another backend (counted as `sessions_replaced`), where it then stays.
#[test]
fn a_session_leaves_a_disabled_backend_and_stays_on_a_drained_one() {
    let t = Topology::new(2);
    let _servers = udp_servers(&t, 2);
    let cfg = simple("dns", "198.18.0.10:53", "udp", &[], "round_robin", pool(2));
    let _lb = t.start_balancer(&cfg, 1);
    let socket = t
        .client
        .enter(|| UdpSocket::bind("0.0.0.0:0").expect("bind"));
    let first = ask(&socket, "one");
    let index = usize::from(first != "backend-1");
    let address = backend_addr(index, 53, false);
    let admin = |action: &str| {
        let (code, body) = balancer_tests::admin::call(
            &t.lb,
            "POST",
            &format!("/backends/p/{address}/{action}"),
            None,
        );
        assert_eq!(code, 200, "{action}: {body}");
    };
    admin("drain");
    assert_eq!(
        ask(&socket, "two"),
        first,
        "a drained backend keeps its sessions"
    );
    admin("disable");
    let moved = ask(&socket, "three");
    assert_ne!(moved, first, "a disabled backend's session is placed again");
    admin("enable");
    assert_eq!(
        ask(&socket, "four"),
        moved,
        "the new session stays where it is"
    );
    // The status file is written once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, status) = balancer_tests::admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(
        status["listeners"][0]["counters"]["sessions_replaced"], 1,
        "{status}"
    );
}
