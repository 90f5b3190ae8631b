//! The XDP program's diagnostics end to end: the daemon's program reports a
//! flow that outlived its backend (a reload removed it under a held
//! connection), and the report reaches the daemon's log only at the level
//! set through the admin API; nothing while off. The level survives a
//! reload that leaves `xdp.log` alone and follows one that changes it.

use std::time::Duration;

use balancer_tests::{
    admin, balancer_bin,
    client::hold,
    l2::{L2, backend, dsr_config},
    write_config,
};

fn config(log: &str) -> String {
    dsr_config(2, log)
}

fn without_backend2(yaml: &str) -> String {
    yaml.replace(
        &format!("      - {{ address: \"{}:80\" }}\n", backend(1)),
        "",
    )
}

/// Reloads to `both`, holds connections on backend-2, then reloads to
/// `both` without it: each one's next request meets a flow whose backend
/// is gone. Returns how many.
fn outlive(t: &L2, both: &str) -> usize {
    reload(t, both);
    let vip = L2::vip(80);
    let mut held: Vec<_> = t
        .client
        .enter(|| hold(vip, 24))
        .into_iter()
        .filter(|(_, name)| name == "backend-2")
        .collect();
    assert!(!held.is_empty(), "no connection landed on backend-2");
    reload(t, &without_backend2(both));
    for (c, _) in &mut held {
        // backend-1 does not know the connection: it resets it.
        assert!(
            c.get().is_err(),
            "a flow on the removed backend still works"
        );
    }
    held.len()
}

fn reload(t: &L2, yaml: &str) {
    write_config(t.dir.path(), yaml);
    let (code, body) = admin::call(&t.lb, "POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
}

fn kernel_lines(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.contains("balancer::kernel") && l.contains("outlived its backend"))
        .count()
}

#[test]
fn kernel_reports_reach_the_log_only_at_the_level_set_through_the_api() {
    let t = L2::new(2);
    let _nginx = t.nginx_on_vip();
    let full = config("");
    let mut lb = t.start_balancer(&full, 1);
    let (code, body) = admin::call(&t.lb, "GET", "/xdp/log", None);
    assert_eq!((code, body["level"].as_str()), (200, Some("off")), "{body}");

    // Off: the events happen, nothing is written.
    outlive(&t, &full);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kernel_lines(&lb.output()), 0, "{}", lb.output());

    // Debug, through the CLI: one line per flow that outlived its backend.
    let bin = balancer_bin();
    let said =
        t.lb.run(bin.to_str().expect("utf-8"), &["xdp-log", "debug"]);
    assert!(
        said.starts_with("XDP diagnostics: debug; no lines yet"),
        "{said}"
    );
    let n = outlive(&t, &full);
    lb.wait_for("outlived its backend", n, Duration::from_secs(5));
    let out = lb.output();
    let line = out
        .lines()
        .find(|l| l.contains("outlived its backend"))
        .expect("a report");
    assert!(
        line.contains("DEBUG")
            && line.contains("program=\"balancer\"")
            && line.contains("at=\"lb.rs:"),
        "{line}"
    );
    assert!(kernel_lines(&out) >= n, "{out}");

    // Status and metrics count them; the reloads kept the level.
    let (_, status) = admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(status["xdp"]["log"]["level"], "debug", "{status}");
    let lines = status["xdp"]["log"]["lines"]["debug"].as_u64().unwrap_or(0);
    assert!(lines >= n as u64, "{status}");
    let metrics = t.lb.run("curl", &["-s", "http://127.0.0.1:9900/metrics"]);
    assert!(
        metrics.contains("balancer_xdp_log_level{level=\"debug\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "balancer_xdp_log_lines_total{{level=\"debug\"}} {lines}"
        )),
        "{metrics}"
    );

    // A bad level is refused and changes nothing.
    let (code, body) = admin::call(&t.lb, "POST", "/xdp/log/loud", None);
    assert_eq!(code, 400, "{body}");
    let (_, body) = admin::call(&t.lb, "GET", "/xdp/log", None);
    assert_eq!(body["level"], "debug", "{body}");
    // The file changing `xdp.log` sets it: warn, so debug reports stop.
    let before = kernel_lines(&lb.output());
    outlive(&t, &config(", log: warn"));
    let (_, body) = admin::call(&t.lb, "GET", "/xdp/log", None);
    assert_eq!(body["level"], "warn", "{body}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kernel_lines(&lb.output()), before, "{}", lb.output());
}
