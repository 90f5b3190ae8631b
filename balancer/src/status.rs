//! The daemon's status snapshot: per listener its plane and counters, and the
//! XDP program's per-verdict, per-outcome and per-drop-reason counters read
//! from its per-CPU maps. The daemon rewrites `status.json` in its state
//! directory every second (write, then rename, so a reader never sees half a
//! file) and removes it on a clean exit; `balancer status` prints it.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const FILE: &str = "status.json";

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Daemon pid.
    pub pid: u32,
    /// How the daemon started: fresh, over re-adopted XDP maps, replacing
    /// a program still running, with sockets systemd passed.
    #[serde(default)]
    pub started: String,
    /// When written, milliseconds since the Unix epoch.
    pub written_ms: u64,
    /// Listeners in config order.
    pub listeners: Vec<ListenerStatus>,
    /// Pools in config order, with their backends' states.
    #[serde(default)]
    pub pools: Vec<PoolStatus>,
    /// The XDP plane, when one is attached.
    pub xdp: Option<XdpStatus>,
    /// The VIP announcements, when configured.
    #[serde(default)]
    pub announce: Option<crate::announce::report::Report>,
    /// Backend discovery, when a pool discovers backends.
    #[serde(
        default,
        skip_serializing_if = "crate::discover::DiscoveryStatus::is_empty"
    )]
    pub discovery: crate::discover::DiscoveryStatus,
}

/// One listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// Name.
    pub name: String,
    /// `IP:port`.
    pub address: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Mode from the config.
    pub mode: String,
    /// Plane serving it: `xdp` or `proxy`.
    pub plane: String,
    /// Proxy counters (zero for XDP listeners, which the kernel counts).
    pub counters: BTreeMap<String, u64>,
    /// HTTP listeners: requests by route and status code.
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
    /// Listeners that terminate TLS: handshakes and certificates.
    #[serde(default)]
    pub tls: Option<TlsStatus>,
}

/// A TLS listener's handshakes and certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of which resumed a session.
    pub resumed: u64,
    /// Failures by reason (only reasons seen).
    pub failures: BTreeMap<String, u64>,
    /// Certificates served.
    pub certificates: Vec<CertificateStatus>,
}

/// One certificate a listener serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// Its file.
    pub file: String,
    /// The names it serves.
    pub names: Vec<String>,
    /// Seconds until it expires (negative: expired).
    pub expires_in_s: i64,
}

/// One route of an HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The route's name (`(default)`: requests no route took).
    pub name: String,
    /// Answers by status code.
    pub codes: BTreeMap<u16, u64>,
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: String,
    /// Backends in config order.
    pub backends: Vec<BackendStatus>,
}

/// One backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// `IP:port`.
    pub address: String,
    /// `up`, `falling`, `down`, `rising`, `draining` or `disabled`.
    pub state: String,
    /// Weight for new flows now (0 while it takes none).
    pub weight: u32,
    /// `static` (the config file), `dns` or `file` (discovered).
    #[serde(default)]
    pub origin: String,
    /// Proxied connections or sessions open now.
    pub active: u64,
    /// Proxied connections or sessions, ever.
    pub total: u64,
    /// Proxy connect attempts that failed.
    pub connect_failures: u64,
    /// Of those, failed TLS handshakes (pools with `tls`).
    #[serde(default)]
    pub tls_failures: u64,
    /// Bytes client -> backend through the proxy.
    pub bytes_in: u64,
    /// Bytes backend -> client through the proxy.
    pub bytes_out: u64,
    /// Health checks run.
    pub checks: u64,
    /// Health checks failed.
    pub checks_failed: u64,
    /// The last check's latency in microseconds, when it passed.
    pub last_check_us: Option<u64>,
    /// Why the last check failed, when it did.
    pub last_check_error: Option<String>,
}

/// The XDP plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpStatus {
    /// Interface.
    pub interface: String,
    /// `native` or `generic`.
    pub attach: String,
    /// Every counter by name, summed over CPUs.
    pub counters: BTreeMap<String, u64>,
    /// Guard drops by listener, then reason; listeners with none left out.
    #[serde(default)]
    pub guard: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sources the per-source limits dropped in the last 10 s, most first.
    #[serde(default)]
    pub limited: Vec<LimitedStatus>,
    /// What the program reports into the daemon's log.
    #[serde(default)]
    pub log: KernelLogStatus,
}

/// The XDP program's diagnostics: its level and the lines so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelLogStatus {
    /// `off`, `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Lines written, by level; levels with none left out.
    pub lines: BTreeMap<String, u64>,
    /// Lines over the rate limit, counted and not written.
    pub suppressed: u64,
}

/// A source the per-source limits are dropping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitedStatus {
    /// Address (IPv6: its /64).
    pub source: String,
    /// Packets dropped.
    pub drops: u64,
    /// Milliseconds since the last drop.
    pub ago_ms: u64,
}

/// Why the snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No snapshot: no daemon runs with this state directory.
    #[error("no running balancer found: `{}` does not exist (is the daemon running, with this state_dir?)", .0.display())]
    Missing(PathBuf),
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a snapshot.
    #[error("`{}` is not a status snapshot: {source}", path.display())]
    Parse {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `status` into `dir` atomically.
pub fn write(dir: &Path, status: &Snapshot) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(status).map_err(io::Error::other)?,
    )?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Removes the snapshot (clean exit).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}

/// Reads the snapshot in `dir`.
pub fn read(dir: &Path) -> Result<Snapshot, StatusError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StatusError::Missing(path)),
        Err(source) => return Err(StatusError::Read { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| StatusError::Parse { path, source })
}

/// The snapshot as a table for people.
#[must_use]
pub fn render(s: &Snapshot, now_ms: u64) -> String {
    let mut out = String::new();
    let age = now_ms.saturating_sub(s.written_ms);
    let _ = writeln!(
        out,
        "balancer pid {} (snapshot {:.1} s old)\nstarted: {}\n",
        s.pid,
        age as f64 / 1000.0,
        if s.started.is_empty() {
            "fresh"
        } else {
            &s.started
        }
    );
    let _ = writeln!(
        out,
        "{:<16} {:<28} {:<5} {:<6} {:<6} counters",
        "listener", "address", "proto", "mode", "plane"
    );
    for l in &s.listeners {
        let counters: Vec<String> = l
            .counters
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "{:<16} {:<28} {:<5} {:<6} {:<6} {}",
            l.name,
            l.address,
            l.protocol,
            l.mode,
            l.plane,
            counters.join(" ")
        );
        if let Some(t) = &l.tls {
            render_tls(&mut out, t);
        }
        for r in &l.routes {
            let total: u64 = r.codes.values().sum();
            let codes: Vec<String> = r.codes.iter().map(|(c, n)| format!("{c}={n}")).collect();
            let _ = writeln!(
                out,
                "  route {:<24} requests={total} {}",
                r.name,
                codes.join(" ")
            );
        }
    }
    for p in &s.pools {
        let _ = writeln!(out, "\npool {} ({}):", p.name, p.algorithm);
        for b in &p.backends {
            let check = match (&b.last_check_us, &b.last_check_error) {
                (Some(us), _) => format!("check ok {:.1} ms", *us as f64 / 1000.0),
                (None, Some(e)) => format!("check failed: {e}"),
                (None, None) => String::new(),
            };
            let found = match b.origin.as_str() {
                "" | "static" => String::new(),
                o => format!("({o}) "),
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<9} weight {:<5} active {:<6} total {:<8} failures {:<5} {found}{check}",
                b.address, b.state, b.weight, b.active, b.total, b.connect_failures
            );
        }
    }
    render_discovery(&mut out, &s.discovery, now_ms / 1000);
    if let Some(a) = &s.announce {
        let _ = write!(out, "\n{}", a.render());
    }
    if let Some(x) = &s.xdp {
        render_xdp(&mut out, x);
    }
    out
}

/// The XDP plane: its counters, guard drops, limited sources and what
/// the program reports.
fn render_xdp(out: &mut String, x: &XdpStatus) {
    let _ = writeln!(out, "\nXDP on {} ({}):", x.interface, x.attach);
    let lines: u64 = x.log.lines.values().sum();
    let _ = writeln!(
        out,
        "  kernel diagnostics: {} ({lines} lines, {} suppressed)",
        x.log.level, x.log.suppressed
    );
    for (k, v) in x.counters.iter().filter(|(_, v)| **v > 0) {
        let _ = writeln!(out, "  {k:<24} {v}");
    }
    for (listener, drops) in &x.guard {
        let _ = writeln!(out, "\nguard drops, listener {listener}:");
        for (k, v) in drops {
            let _ = writeln!(out, "  {k:<24} {v}");
        }
    }
    if !x.limited.is_empty() {
        let _ = writeln!(out, "\nsources limited in the last 10 s:");
        for l in &x.limited {
            let _ = writeln!(
                out,
                "  {:<40} {:>10} drops, last {} ms ago",
                l.source, l.drops, l.ago_ms
            );
        }
    }
}

/// The discovery sources: what each follows, its set, and its failures.
fn render_discovery(out: &mut String, d: &crate::discover::DiscoveryStatus, now_s: u64) {
    if d.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ndiscovery:");
    let ago = |t: Option<u64>| {
        t.map_or("never".to_owned(), |t| {
            format!("{} s ago", now_s.saturating_sub(t))
        })
    };
    for src in &d.sources {
        let _ = writeln!(
            out,
            "  {:<4} {:<40} pools {:<16} backends {:<4} changes {:<4} last change {}, last success {}",
            src.source,
            src.target,
            src.pools.join(","),
            src.backends,
            src.changes,
            ago(src.last_change_unix),
            ago(src.last_success_unix),
        );
        if let Some(e) = &src.last_error {
            let _ = writeln!(
                out,
                "       failing ({} in a row, {} in all; the last good set serves): {e}",
                src.failing, src.failures
            );
        }
    }
    for n in &d.left_out {
        let _ = writeln!(
            out,
            "  pool {}: {} discovered backends over max_backends left out, {} on another port than its XDP listener's",
            n.pool, n.cut, n.wrong_port
        );
    }
}

/// A TLS listener's handshakes and certificates, indented under it.
fn render_tls(out: &mut String, t: &TlsStatus) {
    let failures: Vec<String> = t.failures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "  tls handshakes={} resumed={} {}",
        t.handshakes,
        t.resumed,
        failures.join(" ")
    );
    for c in &t.certificates {
        let _ = writeln!(
            out,
            "  certificate {} ({}) expires in {} days",
            c.file,
            c.names.join(", "),
            c.expires_in_s / 86_400
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{
        BackendStatus, ListenerStatus, PoolStatus, RouteStatus, Snapshot, StatusError, XdpStatus,
        read, render, write,
    };

    fn discovery_sample() -> crate::discover::DiscoveryStatus {
        crate::discover::DiscoveryStatus {
            sources: vec![crate::discover::SourceStatus {
                source: "dns".into(),
                target: "web.example.test. A".into(),
                pools: vec!["web".into()],
                backends: 3,
                changes: 2,
                failures: 4,
                failing: 1,
                last_error: Some("request timed out".into()),
                last_change_unix: Some(1),
                last_success_unix: Some(1),
                cut: 0,
            }],
            left_out: Vec::new(),
        }
    }

    #[test]
    fn round_trips_through_the_state_dir_and_renders() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read(dir.path()), Err(StatusError::Missing(_))));
        let s = Snapshot {
            pid: 7,
            started: "socket-activated (1 listening socket from systemd)".into(),
            written_ms: 1_000,
            listeners: vec![ListenerStatus {
                name: "web".into(),
                address: "198.18.0.10:80".into(),
                protocol: "tcp".into(),
                mode: "xdp".into(),
                plane: "xdp".into(),
                counters: BTreeMap::new(),
                routes: vec![RouteStatus {
                    name: "api".into(),
                    codes: [(200, 5), (503, 1)].into(),
                }],
                tls: None,
            }],
            pools: vec![PoolStatus {
                name: "web".into(),
                algorithm: "maglev".into(),
                backends: vec![BackendStatus {
                    address: "198.18.1.11:80".into(),
                    state: "down".into(),
                    weight: 0,
                    origin: "dns".into(),
                    active: 0,
                    total: 3,
                    connect_failures: 2,
                    tls_failures: 0,
                    bytes_in: 0,
                    bytes_out: 0,
                    checks: 9,
                    checks_failed: 4,
                    last_check_us: None,
                    last_check_error: Some("connect: refused".into()),
                }],
            }],
            xdp: Some(XdpStatus {
                interface: "eth0".into(),
                attach: "native".into(),
                counters: BTreeMap::from([
                    ("forward_dsr".into(), 12),
                    ("drop_no_backend".into(), 0),
                ]),
                guard: BTreeMap::from([("web".into(), BTreeMap::from([("guard_deny".into(), 3)]))]),
                limited: vec![super::LimitedStatus {
                    source: "198.18.128.7".into(),
                    drops: 41,
                    ago_ms: 120,
                }],
                log: super::KernelLogStatus {
                    level: "warn".into(),
                    lines: BTreeMap::from([("warn".into(), 2)]),
                    suppressed: 0,
                },
            }),
            announce: Some(crate::announce::report::Report {
                interface: "vip0".into(),
                withdrawn: true,
                vips: vec![crate::announce::report::Vip {
                    address: "198.18.0.10".parse().expect("ip"),
                    announced: false,
                    local: false,
                    reason: crate::announce::report::Reason::Withdrawn,
                }],
            }),
            discovery: discovery_sample(),
        };
        write(dir.path(), &s).expect("write");
        assert_eq!(read(dir.path()).expect("read"), s);
        let text = render(&s, 2_500);
        assert!(text.contains("snapshot 1.5 s old"));
        assert!(text.contains("forward_dsr"));
        assert!(text.contains("198.18.1.11:80") && text.contains("down"));
        assert!(text.contains("check failed: connect: refused"));
        assert!(text.contains("(dns) check failed"), "{text}");
        assert!(
            text.contains("web.example.test. A") && text.contains("failing (1 in a row, 4 in all"),
            "{text}"
        );
        assert!(
            text.contains("announcements on vip0: host withdrawn by the operator"),
            "{text}"
        );
        assert!(
            text.contains("route api") && text.contains("requests=6 200=5 503=1"),
            "{text}"
        );
        assert!(
            !text.contains("drop_no_backend"),
            "zero counters are left out"
        );
    }
}
