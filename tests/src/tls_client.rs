//! Command-line TLS clients run inside a namespace: a program fed some
//! input with its output kept, `openssl s_client`, and the subject of the
//! certificate a listener shows for a server name.

use std::process::Stdio;

use crate::{Topology, netns::Netns, topology::VIP4};

/// Runs `program` in `ns` for at most 10 s with `input` on its stdin;
/// returns whether it succeeded and its stdout and stderr together.
#[must_use]
pub fn attempt(ns: &Netns, program: &str, args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = ns
        .command("timeout")
        .arg("10")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl s_client` from the client namespace to the VIP's `port` with
/// `args`, fed `input`.
#[must_use]
pub fn s_client(t: &Topology, port: u16, args: &[&str], input: &str) -> (bool, String) {
    let connect = format!("{VIP4}:{port}");
    let mut all = vec!["s_client", "-connect", &connect];
    all.extend_from_slice(args);
    attempt(&t.client, "openssl", &all, input)
}

/// The subject of the certificate the VIP's `port` shows for `sni`
/// (`None`: no SNI), or `None` when the handshake fails.
#[must_use]
pub fn served_subject(t: &Topology, port: u16, sni: Option<&str>) -> Option<String> {
    let args: Vec<&str> = match sni {
        Some(name) => vec!["-servername", name],
        None => vec!["-noservername"],
    };
    let (ok, out) = s_client(t, port, &args, "");
    if !ok || !out.contains("-----BEGIN CERTIFICATE-----") {
        return None;
    }
    out.lines()
        .find_map(|l| l.trim().strip_prefix("subject="))
        .map(str::to_owned)
}
