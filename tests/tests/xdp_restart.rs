//! The XDP program outlives its daemon: it is attached through a `bpf_link`
//! pinned on a BPF filesystem mounted outside the test's namespaces, so
//! `kill -9` of the daemon leaves it forwarding with its maps, and each new
//! start swaps a freshly loaded program into the same link. Rounds of
//! `kill -9` and restart run under steady traffic: keep-alive connections
//! exchanging requests and new connections arriving, none of which may
//! fail, while the program id changes on every start.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use balancer_tests::{
    bpffs::BpfFs,
    client::http_get,
    l2::{self, L2},
    steady::{Tally, program_id, traffic},
};

/// `kill -9` rounds.
const ROUNDS: usize = 50;
/// Keep-alive connections exchanging requests throughout.
const KEPT: usize = 100;
/// New connections per second throughout.
const NEW_PER_SEC: u32 = 50;

fn config(pin_dir: &std::path::Path) -> String {
    l2::dsr_config(3, &format!(", pin_dir: \"{}\"", pin_dir.display()))
}

#[test]
fn kill_9_rounds_lose_no_connection_and_each_start_replaces_the_program() {
    let t = L2::new(3);
    let fs = BpfFs::new();
    let _nginx = t.nginx_on_vip();
    let yaml = config(&fs.path().join("lb"));
    let vip = L2::vip(80);
    let mut lb = t.start_balancer(&yaml, 1);
    let mut ids = vec![program_id(&lb.output()).expect("the first start logs its program id")];
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            t.client
                .enter(|| traffic(vip, KEPT, NEW_PER_SEC, &stop, &tally));
        });
        for round in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(100));
            lb.signal(libc::SIGKILL);
            assert!(
                lb.wait_timeout(Duration::from_secs(5)).is_some(),
                "round {round}: still running"
            );
            // No daemon at all for a moment: the program carries on.
            let during = tally.new_ok.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                tally.new_ok.load(Ordering::Relaxed) > during,
                "round {round}: no new connection completed while no daemon ran"
            );
            lb = t.start_balancer(&yaml, 1);
            let log = lb.output();
            assert!(
                log.contains("replaced the running XDP program in its pinned link"),
                "round {round}: {log}"
            );
            let id =
                program_id(&log).unwrap_or_else(|| panic!("round {round}: no program id in {log}"));
            assert!(!ids.contains(&id), "round {round}: program {id} again");
            ids.push(id);
            if traffic.is_finished() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (kept_ok, kept_failed, new_ok, new_failed) = tally.counts();
    eprintln!(
        "{ROUNDS} rounds: keep-alive requests {kept_ok} ok, {kept_failed} failed; new connections {new_ok} ok, {new_failed} failed"
    );
    assert_eq!(ids.len(), ROUNDS + 1, "every round restarted");
    assert_eq!(kept_failed, 0, "keep-alive requests failed");
    assert_eq!(new_failed, 0, "new connections failed");
    assert!(
        kept_ok >= (KEPT * ROUNDS) as u64,
        "{kept_ok} keep-alive requests"
    );
    assert!(new_ok >= u64::from(NEW_PER_SEC), "{new_ok} new connections");

    // `balancer detach` removes the link: with no daemon, the VIP is no
    // longer balanced.
    lb.signal(libc::SIGKILL);
    let _ = lb.wait_timeout(Duration::from_secs(5));
    let file = t.dir.path().join("balancer.yaml");
    let out = std::process::Command::new(balancer_tests::balancer_bin())
        .args(["detach", "-c"])
        .arg(&file)
        .output()
        .expect("run balancer detach");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("XDP_LINK_IF"),
        "{text}"
    );
    let after = t.client.enter(|| http_get(vip, None));
    assert!(
        after.is_err(),
        "the VIP still answered after detach: {after:?}"
    );
}
