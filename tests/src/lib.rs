//! Namespace harness for end-to-end tests and benchmarks. A test builds a
//! [`Topology`] (client, balancer and backend namespaces joined by veth and a
//! bridge, addresses from 198.18.0.0/15 and `fd00::/8`), starts real processes
//! inside it, and everything is torn down by `Drop`, also when the test
//! panics. Nothing is ever addressed or routed in the root namespace.

pub mod admin;
pub mod bpffs;
pub mod certs;
pub mod client;
pub mod config;
pub mod dns;
pub mod echo;
pub mod fabric;
pub mod l2;
pub mod netns;
pub mod nginx;
pub mod process;
pub mod scripts;
pub mod soak;
pub mod steady;
pub mod sys;
pub mod tls_client;
pub mod topology;

pub use netns::Netns;
pub use process::Process;
pub use topology::Topology;

/// Path of the balancer binary under test: `BALANCER_BIN` (set by `cargo
/// xtask test`), else the workspace's debug build.
#[must_use]
pub fn balancer_bin() -> std::path::PathBuf {
    std::env::var_os("BALANCER_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/balancer"),
        std::path::PathBuf::from,
    )
}

/// Writes `yaml` as `dir/balancer.yaml`, with its own `state_dir` in `dir`
/// (what [`start_balancer`] runs, and what a reload re-reads).
pub fn write_config(dir: &std::path::Path, yaml: &str) {
    let state = dir.join("state");
    std::fs::write(
        dir.join("balancer.yaml"),
        format!("{yaml}state_dir: {}\n", state.display()),
    )
    .expect("write config");
}

/// Starts `bin run` in `ns` with `yaml` (written to `dir`, with its own
/// `state_dir` there so parallel daemons never share a status file) and waits
/// until `listeners` listeners are serving.
#[must_use]
pub fn start_balancer(
    ns: &Netns,
    dir: &std::path::Path,
    bin: &std::path::Path,
    yaml: &str,
    listeners: usize,
) -> Process {
    write_config(dir, yaml);
    let config = dir.join("balancer.yaml");
    let mut cmd = ns.command(bin.to_str().expect("utf-8 path"));
    // `BALANCER_TEST_LOG=debug` shows the daemon's debug lines in a failing test.
    let level = std::env::var("BALANCER_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
    cmd.args(["run", "-c", config.to_str().expect("utf-8 path")])
        .env("RUST_LOG", level);
    let mut p = Process::spawn("balancer", cmd, dir.join("balancer.log"));
    p.wait_for("listening", listeners, std::time::Duration::from_secs(15));
    p
}

/// Starts `balancer run --upgrade` in `ns` with the config [`start_balancer`]
/// wrote to `dir`, logging to `dir/<log>`, and waits until it serves the
/// sockets the running daemon handed over.
#[must_use]
pub fn upgrade_balancer(ns: &Netns, dir: &std::path::Path, log: &str) -> Process {
    let config = dir.join("balancer.yaml");
    let mut cmd = ns.command(balancer_bin().to_str().expect("utf-8 path"));
    let level = std::env::var("BALANCER_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
    cmd.args([
        "run",
        "--upgrade",
        "-c",
        config.to_str().expect("utf-8 path"),
    ])
    .env("RUST_LOG", level);
    let mut p = Process::spawn("balancer --upgrade", cmd, dir.join(log));
    p.wait_for(
        "serving the inherited sockets",
        1,
        std::time::Duration::from_secs(30),
    );
    p
}
