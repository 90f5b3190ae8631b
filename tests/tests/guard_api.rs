//! Guard lists changed at runtime through the admin API and the `balancer
//! guard` command, in namespaces: a denied client stops getting through
//! while its neighbour carries on, the drop is counted under `deny`, a
//! contradicting entry is refused, the entry survives a reload, and
//! removing it lets the client back in; an entry survives an upgrade.

use std::{net::IpAddr, time::Duration};

use balancer_tests::{
    admin,
    bpffs::BpfFs,
    client::http_get,
    l2::{L2, VIP, backend},
};

/// The client's second address, the one the test denies.
const DENIED: &str = "198.18.0.50";

fn config(pin_dir: &std::path::Path) -> String {
    format!(
        "version: 1
guard:
  deny: [198.18.0.99/32]
listeners:
  - {{ name: web, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: web }}
pools:
  - name: web
    algorithm: maglev
    backends: [{{ address: \"{}:80\" }}]
xdp: {{ interface: eth0, forwarding: dsr, pin_dir: \"{}\" }}
",
        backend(0),
        pin_dir.display()
    )
}

fn deny_drops(t: &L2) -> u64 {
    let (code, status) = admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    status["xdp"]["guard"]["web"]["guard_deny"]
        .as_u64()
        .unwrap_or(0)
}

fn get_from(t: &L2, from: &str) -> Result<String, String> {
    let from: IpAddr = from.parse().expect("address");
    t.client.enter(|| http_get(L2::vip(80), Some(from)))
}

/// The `balancer guard` command, run in the balancer's namespace.
fn guard_cli(t: &L2, args: &[&str]) -> String {
    let bin = balancer_tests::balancer_bin();
    let mut all = vec!["guard"];
    all.extend_from_slice(args);
    t.lb.run(bin.to_str().expect("utf-8"), &all)
}

#[test]
fn runtime_list_entries_drop_a_source_survive_a_reload_and_come_off() {
    let t = L2::new(1);
    t.client
        .ip(&["addr", "add", &format!("{DENIED}/24"), "dev", "eth0"]);
    let fs = BpfFs::new();
    let _nginx = t.nginx_on_vip();
    let lb = t.start_balancer(&config(&fs.path().join("lb")), 1);
    get_from(&t, "198.18.0.1").expect("before: first client");
    get_from(&t, DENIED).expect("before: second client");

    let (code, body) = admin::call(&t.lb, "POST", &format!("/guard/deny/{DENIED}"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["lists"]["global"]["deny"]["file"][0], "198.18.0.99/32");
    assert_eq!(
        body["lists"]["global"]["deny"]["added"][0],
        format!("{DENIED}/32")
    );
    let before = deny_drops(&t);
    let refused = get_from(&t, DENIED).expect_err("a denied source gets no answer");
    assert!(refused.contains("connect"), "{refused}");
    get_from(&t, "198.18.0.1").expect("its neighbour still gets through");
    // The status file is written once a second.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        deny_drops(&t) > before,
        "the denied SYNs are counted under `deny`"
    );

    // Again: nothing changes. An allow entry for the same host would never
    // admit anything, and a file entry cannot be removed here.
    let (code, body) = admin::call(&t.lb, "POST", &format!("/guard/deny/{DENIED}/32"), None);
    assert_eq!((code, &body["changed"]), (200, &serde_json::json!(false)));
    let (code, body) = admin::call(&t.lb, "POST", &format!("/guard/allow/{DENIED}"), None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("never admit")),
        "{body}"
    );
    let (code, body) = admin::call(&t.lb, "DELETE", "/guard/deny/198.18.0.99/32", None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("guard.deny[0]")),
        "{body}"
    );
    let (code, body) = admin::call(&t.lb, "POST", "/listeners/nope/guard/deny/fd00::1", None);
    assert_eq!(code, 404, "{body}");

    // A reload of the unchanged file keeps the entry.
    let (code, body) = admin::call(&t.lb, "POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
    get_from(&t, DENIED).expect_err("still denied after the reload");

    let listed = guard_cli(&t, &["list"]);
    assert!(
        listed.contains(&format!("{DENIED}/32")) && listed.contains("admin API"),
        "{listed}"
    );
    let removed = guard_cli(&t, &["remove", "deny", DENIED]);
    assert!(removed.starts_with("changed"), "{removed}");
    get_from(&t, DENIED).expect("back in once removed");

    // An upgrade carries the entry over: the new daemon refuses the source
    // from its start, and lists the entry as the admin API's.
    let (code, body) = admin::call(&t.lb, "POST", &format!("/guard/deny/{DENIED}"), None);
    assert_eq!(code, 200, "{body}");
    let mut old = lb;
    let new = balancer_tests::upgrade_balancer(&t.lb, t.dir.path(), "balancer-upgraded.log");
    assert!(
        new.output().contains("kept=1"),
        "the new daemon says what it carried over: {}",
        new.output()
    );
    assert!(
        old.wait_timeout(Duration::from_secs(15)).is_some(),
        "the old daemon exits"
    );
    get_from(&t, DENIED).expect_err("still denied after the upgrade");
    get_from(&t, "198.18.0.1").expect("its neighbour still gets through");
    let (code, body) = admin::call(&t.lb, "DELETE", &format!("/guard/deny/{DENIED}/32"), None);
    assert_eq!(
        code, 200,
        "the carried entry is the admin API's to remove: {body}"
    );
    get_from(&t, DENIED).expect("back in once removed from the new daemon");
}
