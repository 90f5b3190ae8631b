//! The proxy plane's listeners of a running daemon. Binding and serving are
//! two steps, so a reload binds every new socket before anything changes
//! (a bad address refuses the reload whole), then commits: listeners gone
//! from the config stop accepting (their connections carry on), new ones
//! start, and kept ones get their new settings and pool swapped in, the
//! socket untouched. A listener is the same one across reloads when its
//! protocol and address are.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::{TcpListener, UdpSocket},
    sync::{Semaphore, mpsc, watch},
    task::JoinHandle,
};
use tracing::{error, info};

use super::services::{connectors, kept_limit, sni_targets, start, start_http, tcp, udp};

use crate::config::http::AccessLog as AccessLogConfig;
use crate::{
    config::{
        Config,
        model::{Listener, Mode, Protocol, ProxyEngine},
    },
    http::{
        self, HttpService, LiveHttp,
        log::{AccessLog, AccessLogs},
        upstream::Upstreams,
    },
    proxy::{self, pipes::PipePool, tcp::LiveTcp, udp::LiveUdp},
    reload::ListenerError,
    runtime::{
        ListenerStats, LivePool, Tracker,
        control::{Event, Passive},
    },
    tls::{Resumption, Terminator, upstream::Connector},
};

/// What every proxy listener shares.
pub struct Shared {
    /// The pipe pool.
    pub pipes: Arc<PipePool>,
    /// The sockmap relay, loaded when a listener first needs it.
    pub relay: Arc<proxy::sockmap::load::Loader>,
    /// Open connections, for the graceful stop.
    pub tracker: Tracker,
    /// The control loop, for passive health.
    pub events: mpsc::Sender<Event>,
    /// Kept-alive connections to backends, for `http` listeners.
    pub upstreams: Arc<Upstreams>,
    /// Open access logs by destination and format, kept across reloads.
    pub access_logs: Arc<Mutex<AccessLogs>>,
}

impl Shared {
    /// The access log `cfg` asks for, opened on first use. [`Listeners::bind`]
    /// has opened the file already, so a failure here means it changed in
    /// between: it is said in the log and the listener serves without one.
    fn access_log(&self, listener: &str, cfg: Option<&AccessLogConfig>) -> Option<Arc<AccessLog>> {
        let cfg = cfg?;
        let key = (cfg.path.clone(), cfg.format);
        let mut logs = self.access_logs.lock().ok()?;
        if let Some(log) = logs.get(&key) {
            return Some(log.clone());
        }
        match AccessLog::start(cfg.path.as_deref(), cfg.format) {
            Ok(log) => {
                logs.insert(key, log.clone());
                Some(log)
            }
            Err(e) => {
                let path = cfg
                    .path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("stdout"));
                error!(%listener, path = %path.display(), error = %e,
                    "cannot open the access log; serving without it (fix the path's directory or permissions, then reload)");
                None
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    protocol: Protocol,
    address: SocketAddr,
}

impl Key {
    pub(super) fn of(l: &Listener) -> Self {
        Self {
            protocol: l.protocol,
            address: l.address,
        }
    }
}

pub(super) enum Service {
    Tcp(Arc<LiveTcp>),
    Udp(Arc<LiveUdp>),
    Http(Arc<LiveHttp>),
}

impl Service {
    /// Whether it serves HTTP (the others proxy bytes).
    const fn is_http(&self) -> bool {
        matches!(self, Service::Http(_))
    }
}

/// A listener serving: its service, and how to stop it.
pub(super) struct Running {
    key: Key,
    name: String,
    service: Service,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// A duplicate of the listening socket, handed to a new daemon on
    /// `run --upgrade`.
    handover: Option<std::os::fd::OwnedFd>,
}

impl Running {
    /// Listener `l` served by `service` on `task`, stopped through `stop`.
    pub(super) fn new(
        l: &Listener,
        service: Service,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            key: Key::of(l),
            name: l.name.clone(),
            service,
            stop,
            task,
            handover: None,
        }
    }
}

pub(super) enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Socket {
    /// Another descriptor of the same socket.
    fn dup(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        match self {
            Socket::Tcp(s) => s.as_fd().try_clone_to_owned().ok(),
            Socket::Udp(s) => s.as_fd().try_clone_to_owned().ok(),
        }
    }
}

/// Sockets bound for a config's new listeners, not serving yet; dropping
/// it closes them.
pub struct Bound {
    sockets: Vec<(Key, Socket)>,
    /// Each listener's TLS, by config index, with its certificates read.
    tls: Vec<Option<Arc<Terminator>>>,
    /// TLS to each pool's backends, by config index, its files read.
    pub upstream_tls: Vec<Option<Arc<Connector>>>,
}

impl Bound {
    /// Tells each TLS listener's counters which certificates it now serves.
    fn publish_certificates(&self, stats: &[Arc<ListenerStats>]) {
        for (st, tls) in stats.iter().zip(&self.tls) {
            if let Some(t) = tls {
                st.tls.serve(t.served());
            }
        }
    }
}

/// Where the XDP plane runs, for the log.
pub struct XdpInfo {
    /// Interface.
    pub interface: String,
    /// `native` or `generic`.
    pub attach: String,
}

impl XdpInfo {
    /// What to log of `plane`.
    #[must_use]
    pub fn of(plane: &crate::dataplane::xdp::plane::XdpPlane) -> Self {
        Self {
            interface: plane.interface.clone(),
            attach: plane.attached.to_string(),
        }
    }
}

/// The running listeners.
pub struct Listeners {
    /// Sockets systemd passed, until their listeners take them.
    inherited: Mutex<super::activation::Inherited>,
    /// How many of them listeners took.
    activated: std::sync::atomic::AtomicUsize,
    running: Vec<Running>,
    stopping: Vec<JoinHandle<()>>,
    stats: HashMap<Key, Arc<ListenerStats>>,
    shared: Shared,
    xdp: Option<XdpInfo>,
}

impl Listeners {
    /// No listeners yet.
    #[must_use]
    pub fn new(shared: Shared, xdp: Option<XdpInfo>) -> Self {
        Self {
            inherited: Mutex::new(super::activation::Inherited::from_env()),
            activated: std::sync::atomic::AtomicUsize::new(0),
            running: Vec::new(),
            stopping: Vec::new(),
            stats: HashMap::new(),
            shared,
            xdp,
        }
    }

    /// Every serving listener's socket, for a new daemon to take over.
    pub fn handover_sockets(&self) -> Vec<(super::upgrade::Kind, std::os::fd::OwnedFd)> {
        self.running
            .iter()
            .filter_map(|r| {
                let fd = r.handover.as_ref()?.try_clone().ok()?;
                Some((
                    super::upgrade::Kind::Listener(r.key.protocol, r.key.address),
                    fd,
                ))
            })
            .collect()
    }

    /// Takes sockets a daemon handed over (`run --upgrade`): they serve
    /// the listeners of the same protocol and address.
    pub fn take_handed(&self, handed: Vec<super::upgrade::Handed>) {
        if let Ok(mut inherited) = self.inherited.lock() {
            inherited.add_handed(handed);
        }
    }

    /// How many listeners serve a socket systemd passed.
    pub fn activated(&self) -> usize {
        self.activated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Logs the sockets systemd passed that no listener took.
    pub fn warn_unclaimed(&self) {
        let names = self
            .inherited
            .lock()
            .map(|i| i.unused())
            .unwrap_or_default();
        for name in names {
            tracing::warn!(socket = %name, "a socket was passed that no listener is named after; it is left unused");
        }
    }

    /// Checks that every listener of `config` can be served (`xdp_served`
    /// says which the XDP plane takes) and binds those the proxy plane
    /// serves that are not running yet.
    pub fn bind(&self, config: &Config, xdp_served: &[bool]) -> Result<Bound, ListenerError> {
        let mut bound = Vec::new();
        let tls = self.terminators(config)?;
        let upstream_tls = connectors(config)?;
        for (i, l) in config.listeners.iter().enumerate() {
            if xdp_served.get(i).copied().unwrap_or(false) {
                continue;
            }
            if l.mode == Mode::Xdp {
                return Err(ListenerError::Unsupported {
                    listener: l.name.clone(),
                    mode: l.mode,
                });
            }
            // Asked for by name, the relay must load; `auto` falls back.
            if l.protocol == Protocol::Tcp && l.proxy_engine == ProxyEngine::Sockmap {
                self.shared
                    .relay
                    .get()
                    .map_err(|reason| ListenerError::Engine {
                        listener: l.name.clone(),
                        reason,
                    })?;
            }
            // An access log that cannot be opened stops the start or the
            // reload here, before anything changes.
            if let Some(path) = l
                .http
                .as_ref()
                .and_then(|h| h.access_log.as_ref())
                .and_then(|a| a.path.as_ref())
            {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ListenerError::AccessLog {
                        listener: l.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
            }
            let key = Key::of(l);
            if let Some(r) = self.running.iter().find(|r| r.key == key) {
                if r.service.is_http() != (l.mode == Mode::Http) {
                    return Err(ListenerError::ModeChange {
                        listener: l.name.clone(),
                        address: l.address,
                    });
                }
                continue;
            }
            let bind_err = |source| ListenerError::Bind {
                listener: l.name.clone(),
                protocol: l.protocol,
                address: l.address,
                source,
            };
            let passed = match self.inherited.lock() {
                Ok(mut inherited) => inherited.take(l)?,
                Err(_) => None,
            };
            let socket = match (passed, l.protocol) {
                (Some(socket), _) => {
                    self.activated
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    info!(listener = %l.name, address = %l.address,
                        "serving an inherited listening socket (from systemd, or from the daemon this one upgrades)");
                    socket
                }
                (None, Protocol::Tcp) => Socket::Tcp(proxy::bind_tcp(l.address).map_err(bind_err)?),
                (None, Protocol::Udp) => Socket::Udp(proxy::bind_udp(l.address).map_err(bind_err)?),
            };
            bound.push((key, socket));
        }
        Ok(Bound {
            sockets: bound,
            tls,
            upstream_tls,
        })
    }

    /// Reads the certificate files of `config`'s TLS listeners again and
    /// swaps them into the running services (new handshakes use them);
    /// returns how many listeners took new ones. A file that cannot be
    /// served changes nothing.
    pub fn refresh_tls(&self, config: &Config) -> Result<usize, ListenerError> {
        let fresh = self.terminators(config)?;
        let mut swapped = 0;
        for (l, t) in config.listeners.iter().zip(fresh) {
            let Some(t) = t else { continue };
            let key = Key::of(l);
            let Some(Service::Http(live)) = self
                .running
                .iter()
                .find(|r| r.key == key)
                .map(|r| &r.service)
            else {
                continue;
            };
            if let Some(slot) = &live.load().tls {
                if let Some(stats) = self.stats.get(&key) {
                    stats.tls.serve(t.served());
                }
                slot.store(t);
                swapped += 1;
            }
        }
        Ok(swapped)
    }

    /// What [`Listeners::commit`] needs to serve `config`, whose listeners
    /// all run already (a change of discovered backends): no sockets to
    /// bind, and the TLS each serves now, its files not read again.
    pub fn rebound(&self, config: &Config, upstream_tls: Vec<Option<Arc<Connector>>>) -> Bound {
        let tls = config
            .listeners
            .iter()
            .map(|l| {
                let key = Key::of(l);
                match self
                    .running
                    .iter()
                    .find(|r| r.key == key)
                    .map(|r| &r.service)
                {
                    Some(Service::Http(live)) => live
                        .load()
                        .tls
                        .as_ref()
                        .map(arc_swap::ArcSwapAny::load_full),
                    _ => None,
                }
            })
            .collect();
        Bound {
            sockets: Vec::new(),
            tls,
            upstream_tls,
        }
    }

    /// The TLS of every listener that terminates it, its certificate
    /// files read now: a file that cannot be served stops the start or
    /// refuses the reload here. A listener already running keeps its
    /// session cache and ticket keys, so clients resume across reloads.
    fn terminators(&self, config: &Config) -> Result<Vec<Option<Arc<Terminator>>>, ListenerError> {
        config
            .listeners
            .iter()
            .map(|l| {
                let Some(settings) = l.http.as_ref().and_then(|h| h.tls.as_ref()) else {
                    return Ok(None);
                };
                let tls_err = |source| ListenerError::Tls {
                    listener: l.name.clone(),
                    source,
                };
                let key = Key::of(l);
                let kept = self.running.iter().find(|r| r.key == key).and_then(|r| {
                    let Service::Http(live) = &r.service else {
                        return None;
                    };
                    live.load()
                        .tls
                        .as_ref()
                        .map(|t| t.load().resumption.clone())
                });
                let resumption = match kept {
                    Some(r) => r,
                    None => Resumption::new().map_err(tls_err)?,
                };
                Terminator::new(settings, resumption)
                    .map(|t| Some(Arc::new(t)))
                    .map_err(tls_err)
            })
            .collect()
    }

    /// Makes the serving set match `config` (see the module docs), with
    /// `pools` by pool index and passive reports for `generation`. Returns
    /// every listener's counters in config order (kept listeners keep
    /// theirs).
    pub fn commit(
        &mut self,
        config: &Config,
        pools: &[Arc<LivePool>],
        generation: u64,
        xdp_served: &[bool],
        mut bound: Bound,
    ) -> Vec<Arc<ListenerStats>> {
        let stats: Vec<Arc<ListenerStats>> = config
            .listeners
            .iter()
            .map(|l| self.stats.get(&Key::of(l)).cloned().unwrap_or_default())
            .collect();
        self.log_new_xdp(config, xdp_served);
        self.stats = config
            .listeners
            .iter()
            .map(Key::of)
            .zip(stats.iter().cloned())
            .collect();
        let wanted: Vec<Key> = config
            .listeners
            .iter()
            .enumerate()
            .filter(|(i, _)| !xdp_served.get(*i).copied().unwrap_or(false))
            .map(|(_, l)| Key::of(l))
            .collect();
        let (keep, gone): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| wanted.contains(&r.key));
        for r in gone {
            info!(listener = %r.name, address = %r.key.address, protocol = %r.key.protocol,
                "stopped listening (removed from the config); open connections carry on");
            let _ = r.stop.send(true);
            self.stopping.push(r.task);
        }
        self.running = keep;
        let mut sockets = std::mem::take(&mut bound.sockets);
        bound.publish_certificates(&stats);
        for (i, l) in config.listeners.iter().enumerate() {
            let key = Key::of(l);
            if !wanted.contains(&key) {
                continue;
            }
            let pool_index = l.pool.unwrap_or_default();
            let pool = || pools[pool_index].clone();
            let passive = Passive::new(pool_index, generation, self.shared.events.clone());
            // A TCP listener's pools: its own, and those of its SNI routes.
            let targets = || {
                let routes = sni_targets(l, pools, generation, &self.shared.events);
                (pool(), passive.clone(), routes)
            };
            let http = |limit, previous| {
                HttpService::new(http::Parts {
                    previous,
                    tls: bound.tls.get(i).cloned().flatten(),
                    upstream_tls: bound.upstream_tls.clone(),
                    config,
                    listener: l,
                    pools,
                    passive: (0..pools.len())
                        .map(|p| Passive::new(p, generation, self.shared.events.clone()))
                        .collect(),
                    upstreams: self.shared.upstreams.clone(),
                    stats: stats[i].clone(),
                    tracker: self.shared.tracker.clone(),
                    limit,
                    access_log: self
                        .shared
                        .access_log(&l.name, l.http.as_ref().and_then(|h| h.access_log.as_ref())),
                })
            };
            if let Some(r) = self.running.iter_mut().find(|r| r.key == key) {
                r.name.clone_from(&l.name);
                match &r.service {
                    Service::Http(live) => {
                        let old = live.load_full();
                        let limit = kept_limit(&old.listener, &old.limit, l);
                        live.store(Arc::new(http(limit, Some(old))));
                    }
                    Service::Tcp(live) => {
                        // The same limit keeps its semaphore, so open
                        // connections still count; a new limit starts
                        // afresh (connections open under the old one then
                        // count against neither).
                        let old = live.load_full();
                        let limit = kept_limit(&old.listener, &old.limit, l);
                        live.store(Arc::new(tcp(&self.shared, l, targets(), &stats[i], limit)));
                    }
                    Service::Udp(live) => {
                        live.store(Arc::new(udp(l, pool(), passive, &stats[i])));
                    }
                }
                continue;
            }
            let Some(at) = sockets.iter().position(|(k, _)| *k == key) else {
                continue;
            };
            let (_, socket) = sockets.swap_remove(at);
            let handover = socket.dup();
            let mut running = match socket {
                Socket::Tcp(s) if l.mode == Mode::Http => {
                    let limit = Arc::new(Semaphore::new(l.max_connections.get() as usize));
                    start_http(l, s, http(limit, None))
                }
                socket => start(&self.shared, l, socket, targets(), &stats[i]),
            };
            running.handover = handover;
            self.running.push(running);
        }
        stats
    }

    /// Logs the listeners the XDP plane takes on with this config.
    fn log_new_xdp(&self, config: &Config, xdp_served: &[bool]) {
        let (interface, attach) = self
            .xdp
            .as_ref()
            .map_or(("?", "?"), |x| (x.interface.as_str(), x.attach.as_str()));
        for (i, l) in config.listeners.iter().enumerate() {
            if xdp_served.get(i).copied().unwrap_or(false) && !self.stats.contains_key(&Key::of(l))
            {
                info!(listener = %l.name, address = %l.address, protocol = %l.protocol, plane = "xdp",
                    %interface, %attach, "listening");
            }
        }
    }

    /// Stops accepting everywhere and waits for the accept loops to end.
    pub async fn stop(&mut self) {
        for r in &self.running {
            let _ = r.stop.send(true);
        }
        for r in self.running.drain(..) {
            let _ = r.task.await;
        }
        for t in self.stopping.drain(..) {
            let _ = t.await;
        }
    }
}
