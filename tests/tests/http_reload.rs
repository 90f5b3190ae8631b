//! The HTTP layer across a reload under load: a WebSocket tunnel (real
//! python3-websockets client and echo server), a held HTTP/1.1 keep-alive
//! connection and a held HTTP/2 connection all carry on, the next request
//! on each kept-alive connection follows the new routes, and requests on new
//! and kept-alive connections made throughout the reload all succeed.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{Process, Topology, client::KeepAlive, nginx, scripts, topology::VIP4};

fn config(extra_route: &str) -> String {
    balancer_tests::config::http_with_websocket(extra_route, "2s")
}

#[test]
fn websocket_http1_and_http2_connections_survive_a_reload_and_follow_its_routes() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _server = scripts::ws_echo_server(&t.backends[0], t.dir.path());
    let mut lb = t.start_balancer(&config(""), 1);
    let vip: SocketAddr = (VIP4, 80).into();

    let ws = scripts::command(&t.client, "ws_hold.py", &["ws://198.18.0.10/ws", "4"]);
    let mut ws = Process::spawn("ws client", ws, t.path("ws-client.log"));
    let h2 = scripts::command(&t.client, "h2_hold.py", &["198.18.0.10", "80", "4"]);
    let mut h2 = Process::spawn("h2 client", h2, t.path("h2-client.log"));
    let mut held = t.client.enter(|| {
        let mut c = KeepAlive::open(vip).expect("connect");
        assert_eq!(c.get().expect("first request"), "backend-1");
        c
    });

    // Load through the reload: new connections and kept-alive ones, none
    // may fail.
    let stop = AtomicBool::new(false);
    let (load_failures, load_done) = std::thread::scope(|scope| {
        let load: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    t.client.enter(|| {
                        let (mut failures, mut done) = (Vec::new(), 0usize);
                        let deadline = Instant::now() + Duration::from_secs(15);
                        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                            let mut c = match KeepAlive::open(vip) {
                                Ok(c) => c,
                                Err(e) => {
                                    failures.push(format!("connect: {e}"));
                                    continue;
                                }
                            };
                            for _ in 0..5 {
                                match c.get() {
                                    Ok(_) => done += 1,
                                    Err(e) => failures.push(e),
                                }
                            }
                        }
                        (failures, done)
                    })
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        balancer_tests::write_config(
            t.dir.path(),
            &config(
                "      - { match: { path: / }, answer: { status: 200, body: \"reloaded\\n\" } }\n",
            ),
        );
        lb.signal(libc::SIGHUP);
        lb.wait_for("reloaded `", 1, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        load.into_iter()
            .map(|h| h.join().expect("load thread"))
            .fold((Vec::new(), 0), |(mut f, n), (more, m)| {
                f.extend(more);
                (f, n + m)
            })
    });
    assert!(
        load_failures.is_empty(),
        "{} of {load_done} requests under load failed: {load_failures:?}",
        load_failures.len()
    );
    assert!(load_done >= 100, "only {load_done} requests under load");

    let after = t.client.enter(|| held.get());
    assert_eq!(
        after.as_deref(),
        Ok("reloaded"),
        "the held HTTP/1.1 connection"
    );
    for (name, p) in [("websocket", &mut ws), ("http/2", &mut h2)] {
        let status = p.wait_timeout(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "{name} client: {}",
            p.output()
        );
    }
    assert_eq!(ws.output().trim(), "one two", "the tunnel carried on");
    assert_eq!(
        h2.output().trim(),
        "backend-1 reloaded",
        "the HTTP/2 connection carried on"
    );
    assert!(!lb.output().contains("panicked"), "{}", lb.output());
}

/// A route that keeps its name and its rate limit keeps its buckets across
/// a reload: a client that spent its burst is still limited after it.
#[test]
fn rate_limits_keep_their_buckets_across_a_reload() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    // The reload test's config, with a rate-limited route ahead of the
    // others (and `extra` routes ahead of that).
    let limited = |extra: &str| {
        config(&format!(
            "{extra}      - {{ name: api, match: {{ path: /api }}, pool: web, rate_limit: {{ key: client_ip, rate: 1, burst: 20 }} }}\n"
        ))
    };
    let mut lb = t.start_balancer(&limited(""), 1);
    // `n` requests in one curl (one connection, a few ms apart): statuses.
    let statuses = |n: usize| -> Vec<String> {
        let mut args = vec![
            "-s".to_owned(),
            "-w".to_owned(),
            "%{http_code}\n".to_owned(),
        ];
        for _ in 0..n {
            args.extend([
                "-o".to_owned(),
                "/dev/null".to_owned(),
                "http://198.18.0.10/api".to_owned(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        t.client
            .run("curl", &args)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let first = statuses(25);
    assert!(
        first[..20].iter().all(|s| s == "200"),
        "the burst of 20 passes: {first:?}"
    );
    assert!(
        first[20..].iter().all(|s| s == "429"),
        "then the limit: {first:?}"
    );
    balancer_tests::write_config(
        t.dir.path(),
        &limited("      - { name: other, match: { path: /other }, answer: { status: 204 } }\n"),
    );
    lb.signal(libc::SIGHUP);
    lb.wait_for("reloaded `", 1, Duration::from_secs(10));
    // A fresh bucket would pass all ten; the kept one has earned only the
    // seconds since, at one request a second.
    let after = statuses(10);
    let passed = after.iter().filter(|s| *s == "200").count();
    assert!(
        passed <= 4,
        "the spent bucket was refilled by the reload: {after:?}"
    );
}
