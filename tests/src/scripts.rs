//! The Python clients and servers under `tests/scripts/` (WebSocket,
//! HTTP/2 holding and floods), run with Debian's interpreter, which has the
//! packages `cargo xtask setup` installs (another `python3` may come first
//! on the PATH).

use std::process::Command;

use crate::{netns::Netns, process::Process};

/// Debian's Python.
pub const PYTHON: &str = "/usr/bin/python3";

/// The path of script `name` in `tests/scripts/`.
#[must_use]
pub fn path(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

/// A command that runs script `name` with `args` inside `ns`.
#[must_use]
pub fn command(ns: &Netns, name: &str, args: &[&str]) -> Command {
    let mut c = ns.command(PYTHON);
    c.arg(path(name)).args(args);
    c
}

/// The WebSocket echo server on backend 1 of a [`crate::Topology`]
/// (198.18.1.11:8765), started and listening, logging to `dir`.
#[must_use]
pub fn ws_echo_server(ns: &Netns, dir: &std::path::Path) -> Process {
    let cmd = command(ns, "ws_echo_server.py", &["198.18.1.11", "8765"]);
    let mut server = Process::spawn("ws server", cmd, dir.join("ws-server.log"));
    server.wait_for("listening", 1, std::time::Duration::from_secs(10));
    server
}

/// A UDP server in `ns` on `ip`:`port` answering each datagram with
/// `name=<datagram>`, bound before this returns; logs to `log`.
#[must_use]
pub fn udp_named(
    ns: &Netns,
    ip: std::net::IpAddr,
    port: u16,
    name: &str,
    log: &std::path::Path,
) -> Process {
    let cmd = command(
        ns,
        "udp_named.py",
        &[&ip.to_string(), &port.to_string(), name],
    );
    let mut server = Process::spawn("udp server", cmd, log.to_path_buf());
    server.wait_for("listening", 1, std::time::Duration::from_secs(10));
    server
}
