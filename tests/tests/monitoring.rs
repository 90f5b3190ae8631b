//! The monitoring kit (`dist/prometheus/alerts.yml`, its promtool tests,
//! and `dist/grafana/balancer.json`) against the real thing: promtool
//! checks the rules and runs their unit tests; then a real Prometheus in
//! the balancer's namespace scrapes a daemon that serves every plane (XDP
//! with the guard, an `auto` listener on the proxy, HTTPS with routes and
//! an access log, discovery, announcements), and every query of the
//! dashboard and every alert rule returns data. The alerts whose condition
//! this site can hold (a backend down, a pool with none serving, an `auto`
//! listener on the proxy, a certificate 10 days from expiry, a withdrawn
//! VIP, failing discovery) return data as written, comparison included;
//! the guard's (100 drops a second for five minutes) is asked without its
//! threshold.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, certs,
    client::http_get,
    l2::{L2, VIP, backend},
};

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let prometheus = dist().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&prometheus)
            .output()
            .expect("promtool (Debian package prometheus)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

/// Every `expr` in the dashboard (panels and variables' `label_values`
/// selectors), with Grafana's variables filled in.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(dist().join("grafana/balancer.json")).expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    collect(&json, &mut out);
    for v in json["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str().or_else(|| v["query"].as_str())
            && let Some(inner) = q.strip_prefix("label_values(")
        {
            let selector = inner
                .rsplit_once(',')
                .map_or(inner.trim_end_matches(')'), |(s, _)| s);
            out.push(selector.to_owned());
        }
    }
    out.into_iter()
        .map(|q| {
            q.replace("$__rate_interval", "30s")
                .replace("$__interval", "5s")
                .replace("$__range", "1m")
                .replace("$instance", ".*")
                .replace("$listener", ".*")
                .replace("$pool", ".*")
        })
        .collect()
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(e) = m.get("expr").and_then(|e| e.as_str())
                && !e.is_empty()
            {
                out.push(e.to_owned());
            }
            m.values().for_each(|x| collect(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// `(alert, expr)` of every rule.
fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dist().join("prometheus/alerts.yml")).expect("rules");
    let mut rules = Vec::new();
    let mut name = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("- alert:") {
            name = Some(n.trim().to_owned());
        } else if let Some(e) = line.strip_prefix("expr:")
            && let Some(n) = name.take()
        {
            rules.push((n, e.trim().to_owned()));
        }
    }
    rules
}

/// The site: an XDP VIP with a per-source SYN limit, an `auto` listener
/// whose round-robin pool keeps it on the proxy, an HTTPS listener with a
/// route to a dead pool and an access log, a pool following a file (one
/// backend over its cap), a DNS source that cannot be reached, and the
/// VIP announced.
fn config(t: &L2, cert: &Path, key: &Path, file: &Path) -> String {
    let log = t.dir.path().join("access.log");
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: web }}
  - {{ name: auto, address: \"198.18.0.2:8082\", protocol: tcp, mode: auto, pool: files }}
  - name: l7
    address: 198.18.0.2:8443
    protocol: tcp
    mode: http
    pool: web
    tls: {{ certificates: [{{ cert: {cert}, key: {key} }}] }}
    http: {{ access_log: {{ path: {log} }} }}
    routes:
      - {{ name: dead, match: {{ path_prefix: /dead }}, pool: dead }}
pools:
  - name: web
    algorithm: maglev
    health: {{ kind: http, path: /, interval: 500ms, timeout: 200ms }}
    backends: [{{ address: \"{b0}:80\" }}, {{ address: \"{b1}:80\" }}]
  - name: files
    algorithm: round_robin
    discover: {{ file: {file}, max_backends: 1 }}
  - name: dead
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, fall: 1 }}
    backends: [{{ address: \"198.18.0.99:80\" }}]
  - name: lookups
    backends: [{{ address: \"{b1}:80\" }}]
    discover:
      dns: {{ name: nowhere.test, port: 80, resolvers: [\"127.0.0.1:1\"], min_interval: 100ms, max_interval: 200ms, timeout: 100ms }}
xdp: {{ interface: eth0, forwarding: dsr }}
guard: {{ per_source: {{ syn_rate: 30, syn_burst: 30 }} }}
announce: {{ interface: vip0, min_healthy: 1 }}
",
        cert = cert.display(),
        key = key.display(),
        log = log.display(),
        file = file.display(),
        b0 = backend(0),
        b1 = backend(1),
    )
}

/// Prometheus in the balancer's namespace, scraping its admin API each
/// second and loading the alert rules.
fn prometheus(t: &L2) -> Process {
    let dir = t.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: [{}]
scrape_configs:
  - job_name: balancer
    static_configs: [{{ targets: ['127.0.0.1:9900'] }}]
",
            dist()
                .join("prometheus/alerts.yml")
                .canonicalize()
                .expect("rules")
                .display()
        ),
    )
    .expect("prometheus.yml");
    let mut cmd = t.lb.command("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090");
    let mut p = Process::spawn("prometheus", cmd, dir.join("prometheus.log"));
    p.wait_for(
        "Server is ready to receive web requests",
        1,
        Duration::from_secs(30),
    );
    p
}

/// The series `query` returns now.
fn query(t: &L2, query: &str) -> Vec<serde_json::Value> {
    let out = t.lb.run(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            "-G",
            "http://127.0.0.1:9090/api/v1/query",
            "--data-urlencode",
            &format!("query={query}"),
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{query}: {e}: {out}"));
    assert_eq!(json["status"], "success", "{query}: {out}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Traffic on every plane, and a few failures of each kind the panels show.
fn traffic(t: &L2) {
    t.client.enter(|| {
        for i in 0..10 {
            http_get(L2::vip(80), None).unwrap_or_else(|e| panic!("vip #{i}: {e}"));
            http_get(SocketAddr::from(([198, 18, 0, 2], 8082)), None)
                .unwrap_or_else(|e| panic!("auto #{i}: {e}"));
        }
    });
    let resolve = "lb.test:8443:198.18.0.2";
    for path in ["/", "/", "/dead"] {
        let _ = t.client.run(
            "curl",
            &[
                "-sk",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "--resolve",
                resolve,
                &format!("https://lb.test:8443{path}"),
            ],
        );
    }
    // Plain HTTP to the TLS port: a failed handshake.
    let _ = t
        .client
        .command("curl")
        .args(["-s", "--max-time", "3", "http://198.18.0.2:8443/"])
        .output();
}

/// SYNs beyond the per-source limit: a burst of connection attempts that
/// give up at once.
fn syn_burst(t: &L2) {
    t.client.enter(|| {
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            let _ = std::net::TcpStream::connect_timeout(&L2::vip(80), Duration::from_millis(5));
        }
    });
}

#[test]
fn every_dashboard_query_and_alert_returns_data_from_a_real_prometheus() {
    let t = L2::new(3);
    let _nginx = t.nginx_on_vip_and_addresses(3, false);
    // Expires in 10 days: the certificate alert holds.
    let short = certs::self_signed(t.dir.path(), "short", "lb.test", 10);
    let (cert, key) = (short.cert, short.key);
    let file = t.dir.path().join("files.yaml");
    std::fs::write(
        &file,
        format!(
            "backends:\n  - address: \"{}:80\"\n  - address: \"{}:80\"\n",
            backend(0),
            backend(2)
        ),
    )
    .expect("file");
    let lb = t.start_balancer(&config(&t, &cert, &key, &file), 2);
    let _prometheus = prometheus(&t);
    // Prometheus applies new targets every 5 s: the scenario starts once
    // it scrapes, so the changes it makes are seen.
    let deadline = Instant::now() + Duration::from_secs(20);
    while query(&t, "up{job=\"balancer\"} == 1").is_empty() {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the balancer"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    traffic(&t);
    let balancer = balancer_tests::balancer_bin();
    let bin = balancer.to_str().expect("utf-8");
    // The announced VIP, withdrawn by the operator; and a reload, which
    // the dashboard marks.
    std::thread::sleep(Duration::from_secs(3));
    let _ = t.lb.run(bin, &["announce", "withdraw"]);
    lb.signal(libc::SIGHUP);
    traffic(&t);
    std::thread::sleep(Duration::from_secs(6));
    syn_burst(&t);
    traffic(&t);
    std::thread::sleep(Duration::from_secs(3));

    let mut empty = Vec::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 40, "{} queries", queries.len());
    for q in &queries {
        if query(&t, q).is_empty() {
            empty.push(q.clone());
        }
    }
    let held = [
        "BalancerBackendDown",
        "BalancerPoolWithoutHealthyBackend",
        "BalancerAutoListenerOnProxy",
        "BalancerCertificateExpiringSoon",
        "BalancerVipWithdrawn",
        "BalancerDiscoveryFailing",
    ];
    let rules = alert_rules();
    assert_eq!(rules.len(), 7, "{rules:?}");
    for (alert, expr) in &rules {
        // Alerts this site cannot hold (a flood of 100 drops a second for
        // minutes) are asked without their threshold.
        let asked = if held.contains(&alert.as_str()) {
            expr.clone()
        } else {
            expr.rsplit_once(['>', '<', '='])
                .map_or(expr.clone(), |(lhs, _)| {
                    lhs.trim_end_matches(['>', '<', '=', '!', ' ']).to_owned()
                })
        };
        if query(&t, &asked).is_empty() {
            empty.push(format!("{alert}: {asked}"));
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} queries returned nothing:\n{}\n\nbalancer log:\n{}",
        empty.len(),
        queries.len() + rules.len(),
        empty.join("\n"),
        lb.output()
    );
    eprintln!(
        "{} dashboard queries and {} alert rules returned data",
        queries.len(),
        rules.len()
    );
}
