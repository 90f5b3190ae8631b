//! Hostile clients against the proxy and HTTP listeners (issue 18 item 4),
//! in namespaces: a spoofed SYN flood (half-open connections, left to the
//! kernel's SYN cookies) while real clients connect; a storm of
//! connections the clients reset at every stage; clients that ask for a
//! large answer and read nothing; and a UDP session table kept full. Each
//! leaves no descriptor, connection or memory behind, and real clients are
//! served throughout.

use std::{
    io::Write as _,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology, admin,
    client::http_get,
    l2::{L2, backend},
    nginx,
    sys::{open_fds, rss_kib},
    topology::{VIP4, backend_addr, random_file},
};

/// The balancer's own address in the [`L2`] network, where the proxy
/// (8080) and HTTP (8081) listeners are.
const LB: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn syn_flood() -> std::path::PathBuf {
    balancer_tests::balancer_bin()
        .parent()
        .expect("target dir")
        .join("examples/syn_flood")
}

/// Connections open through the daemon now, summed over every backend.
fn active(t_lb: &balancer_tests::Netns) -> u64 {
    let (_, status) = admin::call(t_lb, "GET", "/status", None);
    status["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["backends"].as_array().cloned().unwrap_or_default())
        .map(|b| b["active"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until `f` holds, up to `limit`; false if it never did.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// Opens a connection, does `stage` of a request, and resets it (an
/// abortive close: `SO_LINGER` 0 sends RST instead of FIN).
fn reset_at(to: SocketAddr, stage: usize) {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(3)) else {
        return;
    };
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    match stage % 4 {
        0 => {}
        1 => {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHo");
        }
        2 => {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        _ => {
            // Reset while the answer is on its way back.
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn half_open_floods_and_reset_storms_leave_nothing_behind() {
    let mut t = L2::new(2);
    t.napi_on_client_port();
    let _nginx: Vec<Process> = (0..2)
        .map(|i| {
            nginx::start(
                &t.backends[i],
                t.dir.path(),
                &format!("backend-{}", i + 1),
                &[(backend(i), 8080).into()],
            )
        })
        .collect();
    let (b0, b1) = (backend(0), backend(1));
    let lb = t.start_balancer(
        &format!(
            "version: 1
listeners:
  - {{ name: tcp, address: \"{LB}:8080\", protocol: tcp, mode: proxy, pool: web }}
  - {{ name: web, address: \"{LB}:8081\", protocol: tcp, mode: http, pool: web }}
pools:
  - name: web
    backends: [{{ address: \"{b0}:8080\" }}, {{ address: \"{b1}:8080\" }}]
"
        ),
        2,
    );
    let proxy: SocketAddr = (LB, 8080).into();
    let web: SocketAddr = (LB, 8081).into();
    for to in [proxy, web] {
        t.client
            .enter(|| http_get(to, None))
            .expect("served before");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (fds_before, rss_before) = (open_fds(lb.pid()), rss_kib(lb.pid()).expect("RSS"));

    let (ok, failed, sent) = flood_while_clients_connect(&t, proxy, web);
    eprintln!("SYN floods {sent:?}; real clients {ok} served, {failed} failed");
    assert!(ok > 50, "{ok} real requests in the floods");
    assert!(
        failed * 100 <= ok,
        "{failed} of {} real requests failed in the floods",
        ok + failed
    );

    reset_storm(&t, proxy, web);
    for to in [proxy, web] {
        t.client
            .enter(|| http_get(to, None))
            .expect("served after the storm");
    }
    assert!(
        eventually(Duration::from_secs(10), || active(&t.lb) == 0),
        "connections still open after the storm: {}",
        active(&t.lb)
    );
    let fds = || open_fds(lb.pid());
    assert!(
        eventually(Duration::from_secs(10), || fds() <= fds_before + 4),
        "descriptors: {fds_before} before, {} after",
        fds()
    );
    let rss_after = rss_kib(lb.pid()).expect("RSS");
    eprintln!(
        "daemon RSS {rss_before} KiB before, {rss_after} KiB after; descriptors {fds_before} before, {} after",
        fds()
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
}

/// Spoofed SYNs at each listener in turn (1.5 million, or 6 s, each),
/// while real clients open 20 connections a second to both: how many real
/// requests were served and failed, and what the generator said.
fn flood_while_clients_connect(
    t: &L2,
    proxy: SocketAddr,
    web: SocketAddr,
) -> (u64, u64, Vec<String>) {
    let done = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut sent = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            t.client.enter(|| {
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) && i < 1000 {
                    let to = if i.is_multiple_of(2) { proxy } else { web };
                    let counter = if http_get(to, None).is_ok() {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        });
        for port in ["8080", "8081"] {
            let mut cmd = t.client.command(syn_flood().to_str().expect("utf-8"));
            cmd.args([
                "send",
                "eth0",
                &t.lb_mac(),
                &LB.to_string(),
                "fd00:2::2",
                port,
                "6",
                "1500000",
            ]);
            let mut flood = Process::spawn(
                "syn_flood",
                cmd,
                t.dir.path().join(format!("flood-{port}.log")),
            );
            assert!(
                flood.wait_timeout(Duration::from_secs(30)).is_some(),
                "the flood did not end"
            );
            sent.push(flood.output().trim().to_owned());
        }
        done.store(true, Ordering::Relaxed);
    });
    (ok.into_inner(), failed.into_inner(), sent)
}

/// A thousand connections to each listener, reset at every stage of a
/// request, from four threads.
fn reset_storm(t: &L2, proxy: SocketAddr, web: SocketAddr) {
    std::thread::scope(|s| {
        for w in 0..4 {
            let client = &t.client;
            s.spawn(move || {
                client.enter(|| {
                    for i in 0..500usize {
                        reset_at(if i.is_multiple_of(2) { proxy } else { web }, i / 2 + w);
                    }
                });
            });
        }
    });
}

/// Slow readers: each asks for a 64 MiB file and reads nothing. What the
/// daemon holds for each is bounded by its buffers, not by the answer.
#[test]
fn clients_that_read_nothing_do_not_grow_the_daemons_memory() {
    const READERS: usize = 20;
    let t = Topology::new(1);
    let _ = random_file(t.dir.path(), "big", 64 << 20);
    let _nginx = nginx::start(
        &t.backends[0],
        t.dir.path(),
        "backend-1",
        &[backend_addr(0, 80, false)],
    );
    let b = backend_addr(0, 80, false);
    let lb = t.start_balancer(
        &format!(
            "version: 1
listeners:
  - {{ name: web, address: \"{VIP4}:80\", protocol: tcp, mode: http, pool: web }}
  - {{ name: tcp, address: \"{VIP4}:8080\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - {{ name: web, backends: [{{ address: \"{b}\" }}] }}
"
        ),
        2,
    );
    let ask = |port: u16| {
        let to: SocketAddr = (VIP4, port).into();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        // A small window: the kernel holds little for a client that does
        // not read, so what piles up would be in the daemon.
        s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        s.connect_timeout(&to.into(), Duration::from_secs(5))
            .expect("connect");
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /files/big HTTP/1.1\r\nHost: big\r\n\r\n")
            .expect("ask");
        s
    };
    t.client
        .enter(|| http_get((VIP4, 80).into(), None))
        .expect("served");
    let rss_before = rss_kib(lb.pid()).expect("RSS");
    let fds_before = open_fds(lb.pid());
    let held: Vec<TcpStream> = t
        .client
        .enter(|| (0..READERS).flat_map(|_| [ask(80), ask(8080)]).collect());
    // Long enough for a daemon that buffers to take in whole answers.
    std::thread::sleep(Duration::from_secs(5));
    let rss_held = rss_kib(lb.pid()).expect("RSS");
    let per_reader = (rss_held.saturating_sub(rss_before)) / (2 * READERS as u64);
    eprintln!(
        "{} slow readers of 64 MiB: daemon RSS {rss_before} -> {rss_held} KiB ({per_reader} KiB each)",
        2 * READERS
    );
    assert!(
        per_reader < 1024,
        "each slow reader costs {per_reader} KiB: answers pile up in the daemon"
    );
    // Others are served meanwhile, and the readers' connections go when
    // they do.
    t.client
        .enter(|| http_get((VIP4, 80).into(), None))
        .expect("served beside them");
    drop(held);
    assert!(
        eventually(Duration::from_secs(10), || open_fds(lb.pid())
            <= fds_before + 4),
        "descriptors: {fds_before} before, {} after",
        open_fds(lb.pid())
    );
}

/// A UDP listener with room for 100 sessions, asked by 1,000 clients in
/// turn: each is answered, every session past the 100th evicts the oldest
/// (counted), and the daemon's descriptors stay within the bound.
#[test]
fn a_full_udp_session_table_evicts_the_oldest_and_stays_bounded() {
    let t = Topology::new(1);
    let _server = t.udp_backend(0);
    let b = backend_addr(0, 53, false);
    let lb = t.start_balancer(
        &format!(
            "version: 1
listeners:
  - {{ name: dns, address: \"{VIP4}:53\", protocol: udp, mode: proxy, pool: dns, max_sessions: 100 }}
pools:
  - {{ name: dns, backends: [{{ address: \"{b}\" }}] }}
"
        ),
        1,
    );
    let fds_before = open_fds(lb.pid());
    let vip: SocketAddr = (VIP4, 53).into();
    let mut most = 0;
    balancer_tests::sys::raise_nofile_limit().expect("raise the descriptor limit");
    let answered = t.client.enter(|| {
        let mut answered = 0;
        // Every socket is kept to the end, so no client port is used twice.
        let mut clients = Vec::new();
        for i in 0..1000 {
            let s = UdpSocket::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), 0)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            s.send_to(format!("q{i}").as_bytes(), vip).expect("send");
            let mut buf = [0u8; 128];
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && buf[..n].ends_with(format!("=q{i}").as_bytes())
            {
                answered += 1;
            }
            if i % 100 == 99 {
                most = most.max(open_fds(lb.pid()));
            }
            clients.push(s);
        }
        answered
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (_, status) = admin::call(&t.lb, "GET", "/status", None);
    let counters = &status["listeners"][0]["counters"];
    eprintln!(
        "1000 clients: {answered} answered, counters {counters}, descriptors {fds_before} -> at most {most}"
    );
    assert_eq!(answered, 1000);
    assert_eq!(counters["accepted"], 1000, "{counters}");
    assert_eq!(counters["sessions_evicted"], 900, "{counters}");
    assert!(
        most <= fds_before + 100 + 4,
        "descriptors reached {most}, from {fds_before}, with room for 100 sessions"
    );
}
