//! Hot reload end to end, on the proxy plane: listeners added and removed,
//! backends removed, invalid files refused, and a hundred reloads under
//! load, with real nginx backends and real client connections.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use balancer_tests::{
    Process, Topology,
    client::{KeepAlive, hold, http_get, tally},
    config::simple,
    nginx,
    sys::open_fds,
    topology::{VIP4, backend_addr},
    write_config,
};

fn web(backends: &[usize]) -> String {
    let list = backends
        .iter()
        .map(|&i| (backend_addr(i, 80, false).to_string(), 100))
        .collect();
    simple(
        "web",
        &format!("{VIP4}:80"),
        "tcp",
        &[],
        "round_robin",
        list,
    )
}

/// `yaml` with a second listener on port 8080 over backend 1 alone.
fn with_second_listener(yaml: &str) -> String {
    yaml.replace(
        "pools:\n",
        "  - name: second\n    address: \"198.18.0.10:8080\"\n    protocol: tcp\n    mode: proxy\n    pool: p2\npools:\n  - name: p2\n    algorithm: round_robin\n    backends:\n      - address: \"198.18.1.11:80\"\n",
    )
}

fn reload(lb: &mut Process, nth: usize) {
    lb.signal(libc::SIGHUP);
    lb.wait_for("reloaded `", nth, Duration::from_secs(10));
}

fn curl(t: &Topology, method: &str, path: &str) -> (u16, serde_json::Value) {
    balancer_tests::admin::call(&t.lb, method, path, None)
}

/// A reload adds a listener and removes backend-3: the new listener serves,
/// new connections never reach backend-3, and every connection open before
/// the reload, backend-3's included, carries on where it was.
#[test]
fn reload_adds_a_listener_removes_a_backend_and_cuts_nothing() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let mut lb = t.start_balancer(&web(&[0, 1, 2]), 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let mut held = t.client.enter(|| hold(vip, 30));
    assert!(held.iter().any(|(_, n)| n == "backend-3"));
    write_config(t.dir.path(), &with_second_listener(&web(&[0, 1])));
    reload(&mut lb, 1);
    let second: SocketAddr = (VIP4, 8080).into();
    assert_eq!(
        t.client.enter(|| http_get(second, None)),
        Ok("backend-1".to_owned())
    );
    let fresh = tally(t.client.enter(|| {
        (0..30)
            .map(|_| http_get(vip, None).expect("get"))
            .collect::<Vec<_>>()
    }));
    assert!(!fresh.contains_key("backend-3"), "{fresh:?}");
    for (c, name) in &mut held {
        assert_eq!(
            c.get().as_deref(),
            Ok(name.as_str()),
            "a connection open across the reload broke"
        );
    }
    // And back: the second listener goes away, the first stays.
    write_config(t.dir.path(), &web(&[0, 1, 2]));
    reload(&mut lb, 2);
    assert!(
        t.client.enter(|| http_get(second, None)).is_err(),
        "the removed listener still accepts"
    );
    assert!(t.client.enter(|| http_get(vip, None)).is_ok());
}

/// An invalid file changes nothing: the caller gets the error with its
/// line, the old config keeps serving, and the refusal is counted.
#[test]
fn an_invalid_reload_changes_nothing_and_names_the_line() {
    let t = Topology::new(2);
    let _nginx = nginx::start_all(&t, 80, false);
    let _lb = t.start_balancer(&web(&[0, 1]), 1);
    let broken = web(&[0, 1]).replace("198.18.1.12:80", "198.18.1.300:80");
    write_config(t.dir.path(), &broken);
    let line = std::fs::read_to_string(t.dir.path().join("balancer.yaml"))
        .expect("read")
        .lines()
        .position(|l| l.contains("198.18.1.300"))
        .expect("the bad line")
        + 1;
    let (code, body) = curl(&t, "POST", "/reload");
    let error = body["error"].as_str().unwrap_or_default();
    assert_eq!(code, 422, "{body}");
    assert!(
        error.contains(&format!("balancer.yaml:{line}:")) && error.contains("198.18.1.300"),
        "{error}"
    );
    // The CLI says the same.
    let out =
        t.lb.command(balancer_tests::balancer_bin().to_str().expect("utf-8"))
            .args(["reload", "--admin", "127.0.0.1:9900"])
            .output()
            .expect("balancer reload");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("198.18.1.300"));
    let vip: SocketAddr = (VIP4, 80).into();
    let served = tally(t.client.enter(|| {
        (0..20)
            .map(|_| http_get(vip, None).expect("get"))
            .collect::<Vec<_>>()
    }));
    assert_eq!(
        served.len(),
        2,
        "the old config serves both backends: {served:?}"
    );
    let metrics = t.lb.run("curl", &["-s", "http://127.0.0.1:9900/metrics"]);
    assert!(
        metrics.contains("balancer_reloads_total{result=\"failed\"} 2"),
        "{metrics}"
    );
}

/// A hundred reloads, one every 200 ms, alternating two configs, under a
/// steady stream of new connections and 200 long-lived ones that keep
/// asking: nothing fails, nothing is cut, and descriptors do not grow.
#[test]
fn a_hundred_reloads_under_load_fail_nothing() {
    let t = Topology::new(3);
    let _nginx = nginx::start_all(&t, 80, false);
    let a = web(&[0, 1, 2]);
    let b = with_second_listener(&web(&[0, 1, 2]).replace("weight: 100", "weight: 50"));
    let mut lb = t.start_balancer(&a, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let mut held: Vec<KeepAlive> = t.client.enter(|| {
        (0..200)
            .map(|_| KeepAlive::open(vip).expect("connect"))
            .collect()
    });
    for c in &mut held {
        c.get().expect("first request");
    }
    let fds_before = open_fds(lb.pid());
    let stop = AtomicBool::new(false);
    let (made, failed, asked, cut) = std::thread::scope(|s| {
        let fresh = s.spawn(|| {
            t.client.enter(|| {
                let (mut made, mut failed) = (0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) && made < 100_000 {
                    if let Err(e) = http_get(vip, None) {
                        failed.push(e);
                    }
                    made += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                (made, failed)
            })
        });
        let long = s.spawn(|| {
            let (mut asked, mut cut) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) && asked < 1_000_000 {
                for c in &mut held {
                    if let Err(e) = c.get() {
                        cut.push(e);
                    }
                    asked += 1;
                }
            }
            (asked, cut)
        });
        for n in 1..=100 {
            let next = if n % 2 == 1 { &b } else { &a };
            write_config(t.dir.path(), next);
            lb.signal(libc::SIGHUP);
            std::thread::sleep(Duration::from_millis(200));
        }
        lb.wait_for("reloaded `", 100, Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        let (made, failed) = fresh.join().expect("new connections");
        let (asked, cut) = long.join().expect("long-lived connections");
        (made, failed, asked, cut)
    });
    assert!(
        made > 100 && asked > 1_000,
        "too little load: {made} new, {asked} requests on held ones"
    );
    assert!(
        failed.is_empty(),
        "{} of {made} new connections failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(
        cut.is_empty(),
        "{} of {asked} requests on held connections failed: {:?}",
        cut.len(),
        &cut[..cut.len().min(3)]
    );
    assert!(!lb.output().contains("reload refused"), "{}", lb.output());
    let fds_after = open_fds(lb.pid());
    assert!(
        fds_after <= fds_before + 8,
        "descriptors grew from {fds_before} to {fds_after}"
    );
}
