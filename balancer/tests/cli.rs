//! The command line as an operator meets it: `check` exit codes and
//! messages, `run` refusing bad input before starting anything, bind errors
//! naming the listener, `--version`, JSON logs. Loopback only.

mod common;
use common::{Daemon, free_port};

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_balancer"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run balancer")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn config(address: &str, backend: &str) -> String {
    format!(
        "version: 1\nadmin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    address: {address}\n    protocol: tcp\n    mode: proxy\n    pool: p\n\
         pools:\n  - name: p\n    backends:\n      - address: {backend}\n"
    )
}

/// `path`, or, when it names certificates under `/etc/balancer/`, a copy in
/// `dir` naming certificates made there for the test (never committed).
fn with_test_certificates(path: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(path).expect("read example");
    if !text.contains("/etc/balancer/") {
        return path.to_owned();
    }
    let mut out = text.clone();
    for name in ["default", "api", "wild", "backend-ca"] {
        let made = rcgen::generate_simple_self_signed(vec![format!("{name}.example.test")])
            .expect("certificate");
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, made.cert.pem()).expect("write cert");
        std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
        out = out
            .replace(
                &format!("/etc/balancer/{name}.pem"),
                &cert.display().to_string(),
            )
            .replace(
                &format!("/etc/balancer/{name}.key"),
                &key.display().to_string(),
            );
    }
    let copy = dir.join(path.file_name().expect("file name"));
    std::fs::write(&copy, out).expect("write copy");
    copy
}

#[test]
fn check_accepts_every_example() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let certs = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(dir).expect("config dir") {
        let path = entry.expect("entry").path();
        // `config/bird/` holds BIRD's files, checked by the scale-out tests.
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let path = with_test_certificates(&path, certs.path());
        let out = run(&["check", path.to_str().expect("utf-8")]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    }
}

#[test]
fn check_rejects_with_file_line_column_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        &dir,
        "bad.yaml",
        &config("127.0.0.1:8080", "198.18.1.300:80"),
    );
    let out = run(&["check", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "bad.yaml:12:18: pools[0].backends[0].address: `198.18.1.300:80` is not an IP:port"
        ),
        "{err}"
    );
}

#[test]
fn run_with_invalid_config_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bad = write(
        &dir,
        "bad.yaml",
        &config(&format!("127.0.0.1:{port}"), "not-an-address"),
    );
    let out = run(&["run", "-c", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pools[0].backends[0].address"));
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing may be left listening"
    );
}

#[test]
fn run_names_the_listener_whose_address_is_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let file = write(&dir, "c.yaml", &config(&addr.to_string(), "127.0.0.1:9"));
    let out = run(&["run", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listener `web`: cannot bind tcp `{addr}`")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn run_names_the_listener_whose_address_is_not_assigned() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An address from the benchmarking range that this host does not hold:
    // binding fails at once; no packet is sent.
    let file = write(&dir, "c.yaml", &config("198.18.255.254:80", "127.0.0.1:9"));
    let out = run(&["run", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listener `web`: cannot bind tcp `198.18.255.254:80`"),
        "{err}"
    );
}

#[test]
fn version_is_printed() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("balancer "));
}

#[test]
fn json_logs_status_and_clean_exit_on_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let state = dir.path().join("state");
    let yaml = format!(
        "{}state_dir: {}\n",
        config(&format!("127.0.0.1:{port}"), "127.0.0.1:9"),
        state.display()
    );
    let file = write(&dir, "c.yaml", &yaml);
    let log = dir.path().join("log");
    let mut child = Daemon(
        bin()
            .args([
                "--log-format",
                "json",
                "run",
                "-c",
                file.to_str().expect("utf-8"),
            ])
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let start = Instant::now();
    // While it runs, `balancer status` sees it.
    while !state.join("status.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no status snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = run(&["status", "--state-dir", state.to_str().expect("utf-8")]);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("web "));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit}");
    assert!(
        !state.join("status.json").exists(),
        "a clean exit removes the snapshot"
    );
    let text = std::fs::read_to_string(&log).expect("log");
    for line in text.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
    }
    assert!(text.contains("\"message\":\"listening\""), "{text}");
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name)
        .display()
        .to_string()
}

/// The real XDP program and the proxy plane's selector answer alike for
/// many flows (needs root: the program is loaded into the kernel).
#[test]
fn explain_runs_the_real_program_and_the_planes_agree() {
    for port in 40_000..40_040 {
        let src = format!("198.18.0.1:{port}");
        let out = run(&[
            "explain",
            "-c",
            &example("xdp-dsr.yaml"),
            "tcp",
            &src,
            "198.18.0.10:80",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("verdict Tx"), "{text}");
        assert!(text.contains("planes agree"), "{text}");
    }
}

#[test]
fn explain_against_shows_only_the_removed_backends_slots_moving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read_to_string(example("web-maglev.yaml")).expect("example");
    let removed = "      - address: 198.18.1.12:80\n        weight: 100\n";
    assert!(original.contains(removed));
    let smaller = write(&dir, "smaller.yaml", &original.replace(removed, ""));
    let out = run(&[
        "explain",
        "-c",
        &example("web-maglev.yaml"),
        "--against",
        smaller.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let loses = |addr: &str| -> usize {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(addr))
            .unwrap_or_else(|| panic!("{addr} in {text}"));
        line.split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("count")
    };
    // The removed backend loses its whole share; the others lose almost
    // nothing (Maglev's small churn), at most 1% of the table.
    assert!(loses("198.18.1.12:80") > 20_000, "{text}");
    assert!(
        loses("198.18.1.11:80") + loses("198.18.1.13:80") < 655,
        "{text}"
    );
}

#[test]
fn explain_names_a_destination_no_listener_serves() {
    let out = run(&[
        "explain",
        "-c",
        &example("xdp-dsr.yaml"),
        "udp",
        "198.18.0.1:1",
        "198.18.0.10:80",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no listener serves udp `198.18.0.10:80`")
    );
}

#[test]
fn status_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["status", "--state-dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running balancer found"));
}

fn xdp_config(mode: &str, port: u16, backend_port: u16) -> String {
    format!(
        "version: 1\nadmin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    address: 127.0.0.1:{port}\n    protocol: tcp\n    mode: {mode}\n    pool: p\n\
         pools:\n  - name: p\n    algorithm: maglev\n    backends:\n      - address: 127.0.0.1:{backend_port}\n\
         xdp:\n  interface: nosuch0\n"
    )
}

/// An `xdp` listener on an interface that does not exist: the start fails
/// naming the listener and the interface; nothing is left listening.
#[test]
fn xdp_listener_on_a_missing_interface_fails_precisely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let file = write(&dir, "x.yaml", &xdp_config("xdp", port, port));
    let out = run(&["run", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listener `web` needs the XDP plane"), "{err}");
    assert!(err.contains("interface `nosuch0` does not exist"), "{err}");
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing may be left listening"
    );
}

/// An `auto` listener whose XDP plane cannot start is served by the proxy,
/// and the log says why.
#[test]
fn auto_listener_falls_back_to_the_proxy_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = TcpListener::bind("127.0.0.1:0").expect("backend");
    let port = free_port();
    // Same port on both sides, so the listener qualifies for XDP in principle.
    let backend_port = backend.local_addr().expect("addr").port();
    let yaml = xdp_config("auto", port, backend_port).replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.2:{backend_port}"),
    );
    let file = write(
        &dir,
        "a.yaml",
        &format!("{yaml}state_dir: {}\n", dir.path().join("s").display()),
    );
    let log = dir.path().join("log");
    let mut child = Daemon(
        bin()
            .args(["run", "-c", file.to_str().expect("utf-8")])
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never listened: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("XDP plane unavailable"), "{text}");
    assert!(text.contains("nosuch0"), "{text}");
    assert!(
        text.contains("plane=\"proxy\"") || text.contains("plane=proxy"),
        "{text}"
    );
    // And it serves: a connection through it reaches the backend.
    let client = std::net::TcpStream::connect(("127.0.0.2", backend_port)).expect("proxy accepts");
    let (conn, _) = backend.accept().expect("backend reached through the proxy");
    // Closed before the stop, so shutdown has no connection to wait for.
    drop((client, conn));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(child.wait().expect("wait").success());
}

/// An `http` listener whose access log cannot be opened stops the start
/// with the listener and the file named, and nothing is left listening.
#[test]
fn an_access_log_that_cannot_be_opened_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let admin = free_port();
    let yaml = format!(
        "version: 1
admin: {{ listen: 127.0.0.1:{admin} }}
state_dir: {}
listeners:
  - name: web
    address: 127.0.0.1:{port}
    protocol: tcp
    mode: http
    http: {{ access_log: {{ path: /nonexistent-dir/access.log }} }}
pools:
  - {{ name: web, backends: [{{ address: 127.0.0.1:9 }}] }}
",
        dir.path().join("state").display()
    );
    let file = write(&dir, "h.yaml", &yaml);
    let out = run(&["run", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listener `web`: cannot open the access log `/nonexistent-dir/access.log`"),
        "{err}"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing may be left listening"
    );
}
