//! The top-level keys: `version`, `admin`, `state_dir`, `shutdown_grace`
//! and `demo_backends`. Paths must be absolute because the daemon may run
//! from any directory, and a relative path would name a different file
//! under systemd than in a shell.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::Problems;
use crate::config::{
    defaults::{DEFAULT_ADMIN, DEFAULT_SHUTDOWN_GRACE, DEFAULT_STATE_DIR},
    limits::MAX_DEMO_BACKENDS,
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

/// The `admin` section, validated.
pub(super) struct Admin {
    /// Its address; `None` when it does not parse.
    pub listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub insecure: bool,
    pub public_metrics: bool,
}

/// The admin API's settings. An address other hosts can reach needs a
/// token, unless the file says `insecure: true`: the API drains backends,
/// reloads and changes the guard.
pub(super) fn admin(raw: Option<&RawAdmin>, p: &mut Problems) -> Admin {
    let token_file = raw.and_then(|a| a.token_file.as_deref()).map(|f| {
        absolute("admin.token_file", f, p);
        PathBuf::from(f)
    });
    let listen = raw.map_or(DEFAULT_ADMIN.parse().ok(), |a| {
        p.check("admin.listen", values::socket_addr(&a.listen))
    });
    let insecure = raw.and_then(|a| a.insecure).unwrap_or(false);
    if let Some(a) = listen
        && !a.ip().is_loopback()
        && token_file.is_none()
        && !insecure
    {
        p.add(
            "admin.listen",
            format!(
                "`{a}` is reachable from other hosts and there is no `admin.token_file`: anyone who reaches it could drain backends, reload and change the guard; add a `token_file`, listen on 127.0.0.1, or set `admin.insecure: true` to accept that"
            ),
        );
    }
    Admin {
        listen,
        token_file,
        insecure,
        public_metrics: raw.and_then(|a| a.public_metrics).unwrap_or(false),
    }
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
    p.at_most(
        "demo_backends",
        raw.len(),
        MAX_DEMO_BACKENDS,
        "demo backends",
    );
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
