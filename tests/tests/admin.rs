//! The admin API end to end: asked with curl inside the balancer's
//! namespace, checked against real traffic from the client's.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use balancer_tests::{
    Topology,
    client::{hold, http_get, tally},
    config::simple,
    nginx,
    topology::{VIP4, backend_addr},
};

const TOKEN: &str = "s3cret-token";

/// One admin request from the balancer's namespace.
fn admin(t: &Topology, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    balancer_tests::admin::call(&t.lb, method, path, token)
}

fn start(t: &Topology) -> balancer_tests::Process {
    start_with(t, "")
}

/// [`start`] with `pool_keys` (`key: value` lines) added to the pool.
fn start_with(t: &Topology, pool_keys: &str) -> balancer_tests::Process {
    let token = t.dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let backends = (0..3)
        .map(|i| (backend_addr(i, 80, false).to_string(), 100))
        .collect();
    let cfg = simple(
        "web",
        &format!("{VIP4}:80"),
        "tcp",
        &[],
        "round_robin",
        backends,
    )
    .replace(
        "version: 1\n",
        &format!(
            "version: 1\nadmin: {{ listen: 127.0.0.1:9900, token_file: {} }}\n",
            token.display()
        ),
    )
    .replace(
        "    algorithm: round_robin\n",
        &format!("    algorithm: round_robin\n{pool_keys}"),
    );
    let mut lb = t.start_balancer(&cfg, 1);
    lb.wait_for("admin API listening", 1, Duration::from_secs(5));
    lb
}

/// Draining backend-2 under a steady load of new connections and 30
/// keep-alive ones: no connection fails, the keep-alive ones on backend-2
/// carry on there, and no new connection reaches it once the API answered.
#[test]
fn drain_under_load_resets_nothing_and_stops_new_flows() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    let vip: SocketAddr = (VIP4, 80).into();
    let mut held = t.client.enter(|| hold(vip, 30));
    assert!(held.iter().any(|(_, n)| n == "backend-2"));

    // Steady new connections while the drain happens.
    let stop = AtomicBool::new(false);
    let (after_drain, made, failures) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            t.client.enter(|| {
                let mut failures = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 5_000 {
                    if let Err(e) = http_get(vip, None) {
                        failures.push(e);
                    }
                    n += 1;
                }
                (n, failures)
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        let (code, body) = admin(&t, "POST", "/backends/p/198.18.1.12:80/drain", Some(TOKEN));
        assert_eq!(
            (code, body["state"].as_str()),
            (200, Some("draining")),
            "{body}"
        );
        let after_drain: Vec<String> = t.client.enter(|| {
            (0..60)
                .map(|i| http_get(vip, None).unwrap_or_else(|e| panic!("{i}: {e}")))
                .collect()
        });
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let (made, failures) = load.join().expect("load thread");
        (after_drain, made, failures)
    });
    assert!(made > 50, "only {made} connections of load");
    assert!(
        failures.is_empty(),
        "{} of {made} new connections failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let spread = tally(after_drain);
    assert!(
        !spread.contains_key("backend-2"),
        "a new connection reached the drained backend: {spread:?}"
    );
    for (c, name) in &mut held {
        assert_eq!(
            c.get().as_deref(),
            Ok(name.as_str()),
            "a held connection moved or broke"
        );
    }
    // Enabled again, it takes new connections.
    let (code, _) = admin(&t, "POST", "/backends/p/198.18.1.12:80/enable", Some(TOKEN));
    assert_eq!(code, 200);
    let again = tally(t.client.enter(|| {
        (0..30)
            .map(|_| http_get(vip, None).expect("get"))
            .collect::<Vec<_>>()
    }));
    assert!(again.contains_key("backend-2"), "{again:?}");
    // /status shows the backends.
    let (code, status) = admin(&t, "GET", "/status", Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(status["pools"][0]["backends"][1]["state"], "up", "{status}");
}

/// Every kind of bad request gets a 4xx with a JSON error naming it.
#[test]
fn bad_admin_requests_get_precise_errors() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    let cases: [(&str, &str, Option<&str>, u16, &str); 7] = [
        ("GET", "/status", None, 401, "missing"),
        ("GET", "/status", Some("wrong"), 401, "wrong bearer token"),
        ("POST", "/status", Some(TOKEN), 405, "takes GET"),
        ("GET", "/nothing", Some(TOKEN), 404, "no endpoint"),
        (
            "POST",
            "/backends/nope/198.18.1.11:80/drain",
            Some(TOKEN),
            404,
            "no pool named `nope`",
        ),
        (
            "POST",
            "/backends/p/198.18.1.99:80/drain",
            Some(TOKEN),
            404,
            "has no backend",
        ),
        (
            "POST",
            "/backends/p/198.18.1.11:80/weight/20000",
            Some(TOKEN),
            400,
            "out of range",
        ),
    ];
    for (method, path, token, want, says) in cases {
        let (code, body) = admin(&t, method, path, token);
        let error = body["error"].as_str().unwrap_or_default();
        assert_eq!(code, want, "{method} {path}: {body}");
        assert!(error.contains(says), "{method} {path}: {error}");
    }
}

/// `balancer backend` talks to the daemon's admin API, with the address and
/// token taken from the config file.
#[test]
fn the_backend_command_drives_the_api() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    let config = t.dir.path().join("balancer.yaml");
    let cli = |args: &[&str]| {
        let out =
            t.lb.command(balancer_tests::balancer_bin().to_str().expect("utf-8"))
                .arg("backend")
                .args(args)
                .args(["-c", config.to_str().expect("utf-8")])
                .output()
                .expect("balancer backend");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert_eq!(
        cli(&["drain", "p", "198.18.1.11:80"]),
        (true, "p 198.18.1.11:80: draining\n".to_owned())
    );
    assert_eq!(
        cli(&["weight", "p", "198.18.1.11:80", "20"]),
        (true, "p 198.18.1.11:80: draining\n".to_owned())
    );
    assert_eq!(
        cli(&["enable", "p", "198.18.1.11:80"]),
        (true, "p 198.18.1.11:80: up\n".to_owned())
    );
    let (ok, text) = cli(&["drain", "nope", "198.18.1.11:80"]);
    assert!(!ok && text.contains("no pool named `nope`"), "{text}");
    let (code, status) = admin(&t, "GET", "/status", Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(status["pools"][0]["backends"][0]["weight"], 20, "{status}");
}

/// Debian's Prometheus, in the balancer's namespace, scrapes `/metrics`
/// every second; after 45 connections, what it stored per backend equals
/// what the client saw.
#[test]
fn a_real_prometheus_scrapes_per_backend_connection_counts() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start(&t);
    let token = t.dir.path().join("token");
    let conf = t.dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: balancer\n    \
             authorization: {{ credentials_file: {} }}\n    static_configs: [{{ targets: ['127.0.0.1:9900'] }}]\n",
            token.display()
        ),
    )
    .expect("prometheus.yml");
    let mut cmd = t.lb.command("prometheus");
    cmd.args([
        &format!("--config.file={}", conf.display()),
        &format!(
            "--storage.tsdb.path={}",
            t.dir.path().join("tsdb").display()
        ),
        "--web.listen-address=127.0.0.1:9090",
    ]);
    let mut prom =
        balancer_tests::Process::spawn("prometheus", cmd, t.dir.path().join("prometheus.log"));
    prom.wait_for(
        "Server is ready to receive web requests",
        1,
        Duration::from_secs(20),
    );
    let vip: SocketAddr = (VIP4, 80).into();
    let seen = tally(t.client.enter(|| {
        (0..45)
            .map(|_| http_get(vip, None).expect("get"))
            .collect::<Vec<_>>()
    }));
    // A few scrapes after the traffic.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = t.lb.run(
            "curl",
            &[
                "-s",
                "http://127.0.0.1:9090/api/v1/query?query=balancer_backend_connections_total",
            ],
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let stored: std::collections::BTreeMap<String, u64> = json["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let backend = r["metric"]["backend"].as_str()?;
                        let i =
                            (0..3).find(|&i| backend_addr(i, 80, false).to_string() == backend)?;
                        let v = r["value"][1].as_str()?.parse().ok()?;
                        Some((format!("backend-{}", i + 1), v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want: std::collections::BTreeMap<String, u64> =
            seen.iter().map(|(k, v)| (k.clone(), *v as u64)).collect();
        if stored == want {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus stored {stored:?}, the client saw {want:?}:\n{}",
            prom.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// With `drain_timeout: 1s`, a drained backend's open connections carry on
/// for a second, then are closed; the backend shows as disabled and the
/// other backends' connections are untouched.
#[test]
fn a_drain_timeout_closes_what_is_left_after_it() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = start_with(&t, "    drain_timeout: 1s\n");
    let vip: SocketAddr = (VIP4, 80).into();
    let mut held = t.client.enter(|| hold(vip, 12));
    assert!(held.iter().any(|(_, n)| n == "backend-2"), "nothing to cut");
    let (code, _) = admin(&t, "POST", "/backends/p/198.18.1.12:80/drain", Some(TOKEN));
    assert_eq!(code, 200);
    for (c, name) in &mut held {
        assert_eq!(
            c.get().as_deref(),
            Ok(name.as_str()),
            "cut before the drain timeout"
        );
    }
    std::thread::sleep(Duration::from_millis(1_600));
    for (c, name) in &mut held {
        let again = c.get();
        if name == "backend-2" {
            assert!(
                again.is_err(),
                "a drained connection outlived the drain timeout"
            );
        } else {
            assert_eq!(
                again.as_deref(),
                Ok(name.as_str()),
                "another backend's connection broke"
            );
        }
    }
    let (_, status) = admin(&t, "GET", "/status", Some(TOKEN));
    assert_eq!(
        status["pools"][0]["backends"][1]["state"], "disabled",
        "{status}"
    );
}
