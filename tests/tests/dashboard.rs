//! The dashboard in a real browser: headless Chromium, driven through
//! `WebDriver` (`tests/scripts/dashboard.py`), against a daemon with an admin
//! token in a namespace test. A wrong or missing token is refused and asked
//! for; with the right one the page shows the real backends with no console
//! error; a stopped backend turns `down` on the page; the Drain button
//! drains (seen by the API, then by traffic); the page fits a phone. The
//! screenshot goes to `target/dashboard.png`.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use balancer_tests::{
    Topology, admin,
    client::{http_get, tally},
    nginx, scripts,
    topology::{VIP4, backend_addr},
};

const TOKEN: &str = "dashboard-test-token-5e1c";

#[test]
fn the_dashboard_shows_the_backends_follows_a_stop_and_drains_with_the_token() {
    let t = Topology::new(3);
    let mut servers = nginx::start_all(&t, 80, false);
    let token = t.dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let b = |i| backend_addr(i, 80, false);
    let yaml = format!(
        "version: 1
admin: {{ listen: 127.0.0.1:9900, token_file: {} }}
listeners:
  - {{ name: web, address: \"{VIP4}:80\", protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    health: {{ kind: http, path: /, interval: 300ms, timeout: 200ms, fall: 2 }}
    backends: [{{ address: \"{}\" }}, {{ address: \"{}\" }}, {{ address: \"{}\" }}]
",
        token.display(),
        b(0),
        b(1),
        b(2)
    );
    let _lb = t.start_balancer(&yaml, 1);
    // Connections all along, so rates and sparklines have something to
    // show; bounded in count and time.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            t.client.enter(|| {
                for _ in 0..1200 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = http_get((VIP4, 80).into(), None);
                    std::thread::sleep(Duration::from_millis(40));
                }
            });
        });
        browse(&t, &mut servers);
        stop.store(true, Ordering::Relaxed);
    });
}

/// The browser's steps, and what the test does between them.
fn browse(t: &Topology, servers: &mut Vec<balancer_tests::Process>) {
    let b = |i| backend_addr(i, 80, false);
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    let (down, drain) = (b(1).to_string(), b(0).to_string());
    let mut browser = scripts::command(
        &t.lb,
        "dashboard.py",
        &[
            "http://127.0.0.1:9900/",
            TOKEN,
            shot.to_str().expect("utf-8"),
            &down,
            &drain,
        ],
    )
    .env("HOME", t.dir.path())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("python3 with selenium (Debian python3-selenium)");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let mut step = |name: &str| -> serde_json::Value {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the browser script ended before step `{name}`"))
            .expect("read");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["step"], name, "{v}");
        eprintln!("browser: {v}");
        v
    };

    let wrong = step("wrong");
    assert!(
        wrong["error"]
            .as_str()
            .unwrap_or_default()
            .contains("wrong bearer token"),
        "{wrong}"
    );
    let missing = step("missing");
    assert!(
        missing["error"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{missing}"
    );

    check_loaded(&step("loaded"));

    // A backend stops; the page follows.
    let mut stopped = servers.remove(1);
    stopped.signal(libc::SIGTERM);
    let _ = stopped.wait_timeout(Duration::from_secs(5));
    let stdin = browser.stdin.as_mut().expect("stdin");
    writeln!(stdin, "go").expect("tell the browser");
    stdin.flush().expect("flush");
    let down_step = step("down");
    assert!(
        down_step["seconds"].as_f64().unwrap_or(99.0) < 10.0,
        "{down_step}"
    );

    // The Drain button drained backend 1: the API says so, and traffic agrees.
    let drained = step("drained");
    assert!(
        drained["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("draining"),
        "{drained}"
    );
    check_drained(t);

    let phone = step("phone");
    assert!(
        phone["scroll_width"].as_u64() <= phone["width"].as_u64(),
        "the page is wider than a phone: {phone}"
    );
    assert_eq!(
        phone["severe"],
        serde_json::json!([]),
        "console errors: {phone}"
    );
    assert!(browser.wait().expect("browser script").success());
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}

/// The page with the right token: the three backends, up, in order, rates
/// drawn, and not one console error.
fn check_loaded(loaded: &serde_json::Value) {
    let b = |i| backend_addr(i, 80, false);
    assert_eq!(
        loaded["severe"],
        serde_json::json!([]),
        "console errors: {loaded}"
    );
    let rows = loaded["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{loaded}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], b(i).to_string(), "{loaded}");
        assert_eq!(row[1], "up", "{loaded}");
    }
    assert!(loaded["sparks"].as_u64().unwrap_or(0) >= 3, "{loaded}");
}

/// Backend 1 drained through the page: the API says so, and new
/// connections go elsewhere (backend 2 is stopped).
fn check_drained(t: &Topology) {
    let (code, status) = admin::call(&t.lb, "GET", "/status", Some(TOKEN));
    assert_eq!(code, 200);
    let state = status["pools"][0]["backends"][0]["state"].clone();
    assert_eq!(state, "draining", "{status}");
    let spread = t.client.enter(|| {
        tally(
            (0..30)
                .map(|i| http_get((VIP4, 80).into(), None).unwrap_or_else(|e| panic!("#{i}: {e}"))),
        )
    });
    assert_eq!(
        spread.keys().collect::<Vec<_>>(),
        ["backend-3"],
        "{spread:?}"
    );
}
