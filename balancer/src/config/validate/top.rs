//! The top-level keys: `version`, `admin`, `state_dir`, `shutdown_grace`
//! and `demo_backends`. Paths must be absolute because the daemon may run
//! from any directory, and a relative path would name a different file
//! under systemd than in a shell.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::Problems;
use crate::config::{
    defaults::{DEFAULT_ADMIN, DEFAULT_SHUTDOWN_GRACE, DEFAULT_STATE_DIR},
    raw::RawAdmin,
    values,
};

/// The only file format version.
const VERSION: u32 = 1;

/// `version` must be one we read.
pub(super) fn version(version: u32, p: &mut Problems) {
    if version != VERSION {
        p.add(
            "version",
            format!("`{version}` is not a supported version (expected {VERSION})"),
        );
    }
}

/// The admin API address (`None` when it does not parse) and token file.
pub(super) fn admin(
    raw: Option<&RawAdmin>,
    p: &mut Problems,
) -> (Option<SocketAddr>, Option<PathBuf>) {
    let token_file = raw.and_then(|a| a.token_file.as_deref()).map(|f| {
        absolute("admin.token_file", f, p);
        PathBuf::from(f)
    });
    let listen = raw.map_or(DEFAULT_ADMIN.parse().ok(), |a| {
        p.check("admin.listen", values::socket_addr(&a.listen))
    });
    (listen, token_file)
}

/// Where `status.json` goes.
pub(super) fn state_dir(raw: Option<&str>, p: &mut Problems) -> PathBuf {
    let dir = raw.unwrap_or(DEFAULT_STATE_DIR);
    absolute("state_dir", dir, p);
    PathBuf::from(dir)
}

/// How long connections may finish at shutdown.
pub(super) fn shutdown_grace(raw: Option<&String>, p: &mut Problems) -> Duration {
    p.duration("shutdown_grace", raw, DEFAULT_SHUTDOWN_GRACE)
}

/// The built-in demo backends' addresses.
pub(super) fn demo_backends(raw: &[String], p: &mut Problems) -> Vec<SocketAddr> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, a)| p.check(&format!("demo_backends[{i}]"), values::socket_addr(a)))
        .collect()
}

fn absolute(at: &str, path: &str, p: &mut Problems) {
    if !path.starts_with('/') {
        p.add(at, format!("`{path}` must be an absolute path"));
    }
}
