//! Publishes the status snapshot: once a second, the listeners' counters and
//! the XDP program's per-CPU counters go into `state_dir/status.json` (see
//! [`crate::status`]). A failure to write is logged once (and again only
//! after a success) and never stops serving.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use balancer_common::Counter;
use tracing::warn;

use crate::{
    config::{Config, discover::Origin},
    dataplane::xdp::plane::XdpPlane,
    runtime::{BackendState, ListenerStats, LivePool},
    status::{
        self, BackendStatus, CertificateStatus, KernelLogStatus, LimitedStatus, ListenerStatus,
        PoolStatus, RouteStatus, Snapshot, TlsStatus, XdpStatus,
    },
};

/// What the running config looks like; a reload swaps in a new one.
pub struct View {
    /// The running config.
    pub config: Arc<Config>,
    /// Counters per listener, in config order.
    pub listeners: Vec<Arc<ListenerStats>>,
    /// Which listeners the XDP plane serves, in config order.
    pub xdp_served: Vec<bool>,
    /// The pools as the control plane last built them.
    pub pools: Vec<Arc<LivePool>>,
}

/// What the publisher, `/status` and `/metrics` read.
pub struct Sources {
    /// The current view.
    pub view: arc_swap::ArcSwap<View>,
    /// The XDP plane, if attached.
    pub xdp: Option<Arc<Mutex<XdpPlane>>>,
    /// Reloads that took effect.
    pub reloads_ok: std::sync::atomic::AtomicU64,
    /// Reloads refused (invalid file, or what needs a restart).
    pub reloads_failed: std::sync::atomic::AtomicU64,
    /// The HTTP layer's backend connections.
    pub upstreams: Option<Arc<crate::http::upstream::Upstreams>>,
    /// The HTTP layer's access logs (they count dropped lines).
    pub access_logs: Arc<Mutex<crate::http::log::AccessLogs>>,
    /// How the daemon started, for status.
    pub started: String,
    /// The announcements, when configured.
    pub announce: Option<crate::announce::control::Handle>,
    /// Backend discovery, as the daemon last saw it.
    pub discovery: arc_swap::ArcSwap<crate::discover::DiscoveryStatus>,
}

/// A TLS listener's handshakes and certificates, as of now.
fn tls_status(t: &crate::runtime::tls_stats::TlsStats) -> TlsStatus {
    let (handshakes, resumed) = t.handshakes();
    let now = std::time::SystemTime::now();
    TlsStatus {
        handshakes,
        resumed,
        failures: t
            .failures()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(why, n)| (why.label().to_owned(), n))
            .collect(),
        certificates: t
            .certificates()
            .into_iter()
            .map(|c| CertificateStatus {
                expires_in_s: match c.not_after.duration_since(now) {
                    Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                },
                file: c.file,
                names: c.names,
            })
            .collect(),
    }
}

/// One snapshot of `sources`.
#[must_use]
pub fn snapshot(sources: &Sources) -> Snapshot {
    let view = sources.view.load();
    let listeners = view
        .config
        .listeners
        .iter()
        .zip(&view.listeners)
        .zip(&view.xdp_served)
        .map(|((l, stats), &xdp)| ListenerStatus {
            name: l.name.clone(),
            address: l.address.to_string(),
            protocol: l.protocol.to_string(),
            mode: l.mode.to_string(),
            plane: plane_of(l, xdp).to_owned(),
            counters: stats.snapshot(),
            routes: stats
                .http
                .routes()
                .iter()
                .map(|r| RouteStatus {
                    name: r.name.clone(),
                    codes: r.codes(),
                })
                .collect(),
            tls: l
                .http
                .as_ref()
                .and_then(|h| h.tls.as_ref())
                .map(|_| tls_status(&stats.tls)),
        })
        .collect();
    let xdp = sources
        .xdp
        .as_ref()
        .and_then(|plane| plane.lock().ok())
        .map(|plane| XdpStatus {
            guard: plane
                .guard_drops()
                .into_iter()
                .map(|(listener, drops)| {
                    let by_reason = Counter::GUARD
                        .iter()
                        .zip(drops)
                        .filter(|(_, d)| *d > 0)
                        .map(|(k, d)| (k.name().to_owned(), d))
                        .collect();
                    (listener, by_reason)
                })
                .collect(),
            limited: plane
                .limited()
                .into_iter()
                .map(|l| LimitedStatus {
                    source: l.source.to_string(),
                    drops: l.drops,
                    ago_ms: u64::try_from(l.ago.as_millis()).unwrap_or(u64::MAX),
                })
                .collect(),
            log: kernel_log_status(&plane),
            interface: plane.interface.clone(),
            attach: plane.attached.to_string(),
            counters: plane.program().counters().map_or_else(
                |_| BTreeMap::new(),
                |c| {
                    Counter::ALL
                        .iter()
                        .map(|k| (k.name().to_owned(), c[*k as usize]))
                        .collect()
                },
            ),
        });
    let pools = pools(&view);
    Snapshot {
        pid: std::process::id(),
        started: sources.started.clone(),
        written_ms: status::now_ms(),
        listeners,
        pools,
        xdp,
        announce: sources
            .announce
            .as_ref()
            .map(crate::announce::control::Handle::report),
        discovery: (**sources.discovery.load()).clone(),
    }
}

/// The XDP program's diagnostics level and lines, as status shows them.
#[must_use]
pub fn kernel_log_status(plane: &XdpPlane) -> KernelLogStatus {
    let counts = plane.kernel_log_counts();
    KernelLogStatus {
        level: plane.kernel_log().to_string(),
        lines: counts
            .by_level()
            .filter(|(_, n)| *n > 0)
            .map(|(level, n)| (level.to_string(), n))
            .collect(),
        suppressed: counts.suppressed.load(Ordering::Relaxed),
    }
}

/// The same, as the admin API answers it.
#[must_use]
pub fn kernel_log(plane: &XdpPlane) -> serde_json::Value {
    serde_json::to_value(kernel_log_status(plane)).unwrap_or_default()
}

/// The plane serving `l`: `xdp` when the kernel serves it (`xdp`),
/// else `http` or `proxy`.
#[must_use]
pub fn plane_of(l: &crate::config::model::Listener, xdp: bool) -> &'static str {
    match (xdp, l.http.is_some()) {
        (true, _) => "xdp",
        (false, true) => "http",
        (false, false) => "proxy",
    }
}

/// Every pool with its backends' states, and where each backend came from.
fn pools(view: &View) -> Vec<PoolStatus> {
    view.pools
        .iter()
        .map(|live| {
            let pool = live.load();
            let origins: BTreeMap<std::net::SocketAddr, Origin> = view
                .config
                .pools
                .iter()
                .find(|p| p.name == pool.name)
                .map(|p| p.backends.iter().map(|b| (b.address, b.origin)).collect())
                .unwrap_or_default();
            PoolStatus {
                name: pool.name.clone(),
                algorithm: pool.algorithm.to_string(),
                backends: pool
                    .backends
                    .iter()
                    .map(|b| {
                        let origin = origins.get(&b.address).copied().unwrap_or_default();
                        backend_status(b, origin)
                    })
                    .collect(),
            }
        })
        .collect()
}

fn backend_status(b: &BackendState, origin: Origin) -> BackendStatus {
    let s = &b.stats;
    let last = s.last_check.lock().ok().and_then(|l| l.clone());
    BackendStatus {
        address: b.address.to_string(),
        state: b.status.state().to_string(),
        weight: b.weight,
        origin: origin.label().to_owned(),
        active: s.active(),
        total: s.total.load(Ordering::Relaxed),
        connect_failures: s.connect_failures.load(Ordering::Relaxed),
        tls_failures: s.tls_failures.load(Ordering::Relaxed),
        bytes_in: s.bytes_in.load(Ordering::Relaxed),
        bytes_out: s.bytes_out.load(Ordering::Relaxed),
        checks: s.checks.load(Ordering::Relaxed),
        checks_failed: s.checks_failed.load(Ordering::Relaxed),
        last_check_us: last
            .as_ref()
            .and_then(|c| c.latency)
            .map(|d| d.as_micros() as u64),
        last_check_error: last.and_then(|c| c.error).map(|f| f.to_string()),
    }
}

/// Writes a snapshot every second until the task is aborted.
pub async fn run(sources: Arc<Sources>) {
    let dir = sources.view.load().config.state_dir.clone();
    let mut failing = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match status::write(&dir, &snapshot(&sources)) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                warn!(dir = %dir.display(), error = %e, "cannot write the status snapshot; `balancer status` will not see this daemon (set `state_dir` to a writable directory)");
            }
            Err(_) => {}
        }
    }
}
