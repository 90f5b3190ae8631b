//! The guard under a spoofed SYN flood, in namespaces: a generator in the
//! client namespace sends SYNs from random sources (`198.18.128.0/17` and
//! `fd00::/8`) at the highest rate it reaches, as XDP live frames, while real
//! clients open 50 connections a second and 100 keep-alive connections
//! keep streaming requests. The XDP plane balances SYNs without recording
//! them, so the flood never enters the flow table.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use balancer_tests::{
    bpffs::BpfFs,
    client::{KeepAlive, http_get},
    l2::{L2, VIP, VIP6, backend},
    process::Process,
    sys::rss_kib,
};

const FLOW_TABLE: u64 = 10_000;
const FLOOD_SECONDS: u64 = 25;

fn config(pin_dir: &std::path::Path) -> String {
    format!(
        "version: 1
listeners:
  - {{ name: web, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: web }}
  - {{ name: web6, address: \"[{VIP6}]:80\", protocol: tcp, mode: xdp, pool: web6 }}
pools:
  - name: web
    algorithm: maglev
    backends: [{{ address: \"{}:80\" }}, {{ address: \"{}:80\" }}, {{ address: \"{}:80\" }}]
  - name: web6
    algorithm: maglev
    backends: [{{ address: \"[{}]:80\" }}]
xdp: {{ interface: eth0, forwarding: dsr, flow_table_size: {FLOW_TABLE}, pin_dir: \"{}\" }}
",
        backend(0),
        backend(1),
        backend(2),
        balancer_tests::l2::backend6(0),
        pin_dir.display()
    )
}

fn syn_flood() -> std::path::PathBuf {
    balancer_tests::balancer_bin()
        .parent()
        .expect("target dir")
        .join("examples/syn_flood")
}

/// A number from the generator's one-line JSON.
fn field(json: &str, key: &str) -> f64 {
    let at = json
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    json[at + key.len() + 4..]
        .split([',', '}'])
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad {key} in {json}"))
}

#[expect(
    clippy::too_many_lines,
    reason = "one scenario, told in order; splitting it would scatter its timeline"
)]
#[test]
fn a_spoofed_syn_flood_neither_fills_the_flow_table_nor_stops_real_clients() {
    let mut t = L2::new(3);
    t.napi_on_client_port();
    let fs = BpfFs::new();
    let pins = fs.path().join("lb");
    let _nginx = t.nginx_on_vip();
    let lb = t.start_balancer(&config(&pins), 2);
    let vip = L2::vip(80);

    let mut streams: Vec<KeepAlive> = t.client.enter(|| {
        (0..100)
            .map(|i| KeepAlive::open(vip).unwrap_or_else(|e| panic!("stream {i}: {e}")))
            .collect()
    });
    for (i, s) in streams.iter_mut().enumerate() {
        s.get()
            .unwrap_or_else(|e| panic!("stream {i} first request: {e}"));
    }
    let rss_before = rss_kib(lb.pid()).expect("daemon RSS");

    let mut flood_cmd = t.client.command(syn_flood().to_str().expect("utf-8"));
    flood_cmd.args([
        "send",
        "eth0",
        &t.lb_mac(),
        &VIP.to_string(),
        &VIP6.to_string(),
        "80",
        &FLOOD_SECONDS.to_string(),
        "200000000",
    ]);
    let mut flood = Process::spawn("syn_flood", flood_cmd, t.dir.path().join("flood.log"));
    // Let the flood get going before measuring the real clients.
    std::thread::sleep(Duration::from_secs(2));

    let done = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let failures = std::sync::Mutex::new(Vec::new());
    let stream_errors = std::sync::Mutex::new(Vec::new());
    let stream_requests = AtomicU64::new(0);
    let legit_seconds = FLOOD_SECONDS - 6;
    std::thread::scope(|s| {
        // 50 new connections a second, from 10 workers of 5 a second each.
        for w in 0..10u64 {
            let (ok, failed, failures) = (&ok, &failed, &failures);
            let client = &t.client;
            s.spawn(move || {
                client.enter(|| {
                    let start = Instant::now();
                    for i in 0..legit_seconds * 5 {
                        let due = Duration::from_millis(i * 200 + w * 20);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                        match http_get(vip, None) {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().expect("lock").push(e);
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                });
            });
        }
        // The streams ask in turn, one request every 50 ms, until the
        // clients are done.
        let (done, stream_errors, stream_requests) = (&done, &stream_errors, &stream_requests);
        let streams = &mut streams;
        let client = &t.client;
        s.spawn(move || {
            client.enter(|| {
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let k = i % streams.len();
                    if let Err(e) = streams[k].get() {
                        stream_errors
                            .lock()
                            .expect("lock")
                            .push(format!("stream {k}: {e}"));
                    }
                    stream_requests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        });
        std::thread::sleep(Duration::from_secs(legit_seconds + 3));
        done.store(true, Ordering::Relaxed);
    });
    assert!(
        flood.wait_timeout(Duration::from_secs(30)).is_some(),
        "the flood stops by itself"
    );
    let report = flood.output();
    let json = report
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from the generator: {report}"));
    let sent = field(json, "sent");
    eprintln!("flood: {json}");

    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    assert!(ok + failed >= legit_seconds * 50 - 10, "{ok} + {failed}");
    assert!(
        failed * 100 <= ok + failed,
        "at least 99% of real connections succeed: {ok} ok, {failed} failed: {:?}",
        failures
            .lock()
            .expect("lock")
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
    let stream_errors = stream_errors.into_inner().expect("lock");
    assert!(
        stream_errors.is_empty(),
        "no established connection is lost ({} requests): {stream_errors:?}",
        stream_requests.into_inner()
    );
    for (i, s) in streams.iter_mut().enumerate() {
        s.get()
            .unwrap_or_else(|e| panic!("stream {i} after the flood: {e}"));
    }
    assert!(
        sent >= (10 * FLOW_TABLE) as f64,
        "the flood is at least 10x the flow table: {json}"
    );

    let flows = t.lb.run(
        syn_flood().to_str().expect("utf-8"),
        &["flows", pins.to_str().expect("utf-8")],
    );
    assert!(
        field(&flows, "flood_flows") < 0.5,
        "no flood entry: {flows}"
    );
    assert!(
        field(&flows, "flows") <= (100 + ok + failed) as f64,
        "{flows}"
    );

    let rss_after = rss_kib(lb.pid()).expect("daemon RSS");
    assert!(
        rss_after <= rss_before + 4096,
        "the daemon's memory stays flat: {rss_before} KiB before, {rss_after} KiB after"
    );
    // The kernel balanced the flood's SYNs without recording them.
    let state = t.dir.path().join("state");
    let out = std::process::Command::new(balancer_tests::balancer_bin())
        .args(["status", "--state-dir", state.to_str().expect("utf-8")])
        .output()
        .expect("balancer status");
    let text = String::from_utf8_lossy(&out.stdout);
    let syns: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("flow_syn"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no flow_syn counter in {text}"));
    assert!(syns >= 10.0 * FLOW_TABLE as f64, "{text}");
}
