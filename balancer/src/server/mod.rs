//! Runs a validated config: starts demo backends, binds every listener
//! (all before serving anything, so a bad address fails the start cleanly),
//! serves, reloads on SIGHUP or an admin request ([`reload`]), and on
//! SIGINT/SIGTERM stops accepting and lets open connections finish within
//! the grace period.

mod activation;
mod listeners;
mod notify;
mod reload;
mod services;
mod system;
pub mod upgrade;

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use arc_swap::ArcSwap;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};
use tracing::{info, warn};

use self::{
    listeners::{Listeners, Shared, XdpInfo},
    reload::{Daemon, Pools},
};
use crate::dataplane::xdp::plane::served_flags;
use crate::{
    admin,
    config::{Config, model::Mode},
    dataplane::xdp::{PlaneError, plane::XdpPlane},
    demo,
    health::Monitor,
    proxy::pipes::{MAX_PIPES, PipePool},
    publish::{self, View},
    reload::{ListenerError, ReloadRequest},
    runtime::{
        Tracker,
        control::{Control, EVENT_QUEUE},
        plane::Plane,
    },
    status,
};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener cannot be served.
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// A demo backend's address could not be bound.
    #[error("demo backend `{address}`: cannot bind: {source}")]
    Demo {
        /// Address.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// An `xdp` listener cannot be served because the XDP plane failed.
    #[error("listener `{listener}` needs the XDP plane, which failed to start: {source}")]
    Xdp {
        /// Listener name.
        listener: String,
        /// Why the plane failed (boxed: the loader's errors are large).
        #[source]
        source: Box<PlaneError>,
    },
    /// The admin API's address could not be bound.
    #[error(
        "admin API: cannot bind `{address}`: {source} (set `admin.listen` to a free address; port 0 picks one)"
    )]
    Admin {
        /// Address.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The admin token file is unreadable or empty.
    #[error("admin.token_file `{}`: {source}", path.display())]
    Token {
        /// File.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// The announcement interface could not be made or read.
    #[error("announce.interface `{interface}`: {source}")]
    Announce {
        /// The interface.
        interface: String,
        /// What netlink said.
        #[source]
        source: crate::announce::kernel::KernelError,
    },
    /// `run --upgrade` could not take the running daemon's sockets.
    #[error(transparent)]
    Upgrade(#[from] upgrade::UpgradeError),
}

/// Serves `config` (loaded from `file`, which reloads re-read; `None` for
/// the embedded demo) until SIGINT or SIGTERM; SIGHUP reloads. With
/// `upgrade`, takes the listening sockets of the daemon running with the
/// same `state_dir` first (see [`upgrade`]).
pub async fn run(config: Config, file: Option<PathBuf>, upgrade: bool) -> Result<(), RunError> {
    system::raise_fd_limit();
    system::check_syncookies(&config);
    let signals = signals()?;
    let (mut received, handover) = if upgrade {
        let (received, conversation, old) = upgrade::take_over(&config.state_dir)?;
        (received, Some((conversation, old)))
    } else {
        (upgrade::Received::default(), None)
    };
    let config = Arc::new(config);
    let grace = config.shutdown_grace;
    let tracker = Tracker::default();

    let (admin_socket, admin_fd, token) = bind_admin(&config, received.admin.take()).await?;
    // Held until shutdown; its pinned link keeps the program attached after.
    let xdp = start_xdp(&config, received.pins.take().map(|(_, lock)| lock))?;
    let xdp_served = served_flags(xdp.is_some(), &config);
    let (events, inbox) = mpsc::channel(EVENT_QUEUE);
    let upstreams = crate::http::upstream::Upstreams::start();
    let access_logs: Arc<Mutex<crate::http::log::AccessLogs>> = Arc::default();
    let shared = Shared {
        pipes: Arc::new(PipePool::new(MAX_PIPES)),
        relay: Arc::default(),
        tracker: tracker.clone(),
        events: events.clone(),
        upstreams: upstreams.clone(),
        access_logs: access_logs.clone(),
    };
    // Stamped before the listeners read the files (see the watcher).
    let stamps = crate::tls::watch::Stamps::of(&config);
    let mut listeners = Listeners::new(shared, xdp.as_ref().map(XdpInfo::of));
    listeners.take_handed(received.listeners);
    let bound = listeners.bind(&config, &xdp_served)?;
    listeners.warn_unclaimed();
    demo::start(&config.demo_backends)
        .map_err(|(address, source)| RunError::Demo { address, source })?;
    let (pools, by_index) = Pools::default().plan(&config);
    let xdp = xdp.map(|p| Arc::new(Mutex::new(p)));
    follow_neighbours(xdp.as_ref(), &events);
    let (planes, announcements, announce) = planes(&config, xdp.as_ref()).await?;
    let mut control = Control::new(config.clone(), by_index.clone(), planes);
    control.begin_lists(handover.is_some());
    let control = tokio::spawn(control.run(inbox));
    let upstream_tls = bound.upstream_tls.clone();
    let started = started(
        xdp.as_ref(),
        listeners.activated(),
        handover.as_ref().map(|h| h.1),
    );
    info!(%started, "started");
    let stats = listeners.commit(&config, &by_index, 0, &xdp_served, bound);
    let sources = Arc::new(publish::Sources {
        view: ArcSwap::from_pointee(View {
            config: config.clone(),
            listeners: stats,
            xdp_served,
            pools: by_index,
        }),
        xdp: xdp.clone(),
        reloads_ok: AtomicU64::new(0),
        reloads_failed: AtomicU64::new(0),
        upstreams: Some(upstreams),
        access_logs,
        started,
        announce,
    });
    let publisher = tokio::spawn(publish::run(sources.clone()));
    let trimmer = tokio::spawn(system::trim_after_bursts(tracker.clone()));
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let admin = tokio::spawn(admin::serve(
        admin_socket,
        Arc::new(admin::Api::new(
            sources.clone(),
            (events.clone(), reload_tx),
            token,
            config.admin_public_metrics,
        )),
    ));
    let mut daemon = Daemon {
        certificates: crate::tls::watch::Watch::new(stamps),
        monitor: Monitor::start(&config, 0, &events, &upstream_tls),
        config,
        file,
        generation: 0,
        pools,
        listeners,
        sources,
        events,
        admin: admin_fd,
    };
    let which = serve(&mut daemon, signals, &mut reload_rx, handover).await;
    shut_down(
        daemon,
        (&tracker, grace, which),
        announcements,
        [publisher, admin, control, trimmer],
    )
    .await;
    drop(xdp);
    info!("stopped");
    Ok(())
}

/// Serves until SIGINT, SIGTERM or a new daemon that took the sockets
/// over (whose name it returns): reloads on SIGHUP and admin requests,
/// swaps certificate files changed on disk, pings the systemd watchdog,
/// tells systemd each step, offers the listening sockets to `run
/// --upgrade`, and starts such a successor itself on SIGUSR2. `handover`
/// is the conversation with the daemon this one took the sockets from:
/// told `SERVING` once this one serves.
async fn serve(
    daemon: &mut Daemon,
    [mut sigint, mut sigterm, mut sighup, mut sigusr2]: [Signal; 4],
    reload_rx: &mut mpsc::Receiver<ReloadRequest>,
    handover: Option<(std::os::unix::net::UnixStream, u32)>,
) -> &'static str {
    let mut certificates = tokio::time::interval(crate::tls::watch::EVERY);
    certificates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let systemd = notify::Notifier::from_env();
    let mut watchdog = tokio::time::interval(
        systemd
            .watchdog
            .unwrap_or(std::time::Duration::from_hours(1)),
    );
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let serving = format!("serving {} listeners", daemon.config.listeners.len());
    if handover.is_some() {
        // Under systemd the new process is the service's main one now,
        // said in the same message as its readiness.
        systemd.send(&format!(
            "MAINPID={}\nREADY=1\nSTATUS={serving}",
            std::process::id()
        ));
    } else {
        systemd.ready(&serving);
    }
    if let Some((conversation, old)) = handover {
        match upgrade::serving(conversation) {
            Ok(()) => info!(
                from_pid = old,
                "serving the inherited sockets; the old daemon stops accepting and drains"
            ),
            Err(e) => {
                warn!(from_pid = old, error = %e, "cannot tell the old daemon this one serves; it keeps accepting too");
            }
        }
    }
    let offers = upgrade::Offers::bind(&daemon.config.state_dir);
    // Where this binary was started from, read now: once a new version is
    // installed there, the running one's own path reads `(deleted)`.
    let exe = std::env::current_exe();
    let (upgraded_tx, mut upgraded) = mpsc::channel(1);
    let which = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            _ = sighup.recv() => {
                systemd.reloading();
                let done = daemon.reload().await;
                systemd.ready(&reloaded(&done));
            }
            _ = sigusr2.recv() => successor(exe.as_deref()),
            _ = certificates.tick() => daemon.watch_certificates(),
            _ = watchdog.tick(), if systemd.watchdog.is_some() => systemd.watchdog(&daemon.events).await,
            Some(reply) = reload_rx.recv() => {
                systemd.reloading();
                let done = daemon.reload().await;
                systemd.ready(&reloaded(&done));
                let _ = reply.send(done);
            }
            stream = offers.next() => {
                let sockets = offered(daemon);
                let tx = upgraded_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.blocking_send(upgrade::offer(&stream, &sockets));
                });
            }
            Some(outcome) = upgraded.recv() => match outcome {
                Ok(pid) => {
                    info!(new_pid = pid, "a new daemon serves the listening sockets: handing over");
                    break "upgrade";
                }
                Err(e) => {
                    warn!(error = %e, "an upgrade was abandoned; serving on");
                    take_back(&daemon.events).await;
                    if let Some(announce) = &daemon.sources.announce {
                        announce.freeze(false);
                    }
                }
            },
        }
    };
    // After a handover the service goes on in the new process: a
    // STOPPING=1 from this one would tell systemd the service stops.
    if which != "upgrade" {
        systemd.stopping();
    }
    which
}

/// SIGUSR2: starts the successor that upgrades this daemon (see
/// [`upgrade::start_successor`]); its failure is logged, and this one
/// serves on.
fn successor(exe: Result<&std::path::Path, &io::Error>) {
    let started = exe
        .map_err(|e| io::Error::new(e.kind(), e.to_string()))
        .and_then(upgrade::start_successor);
    match started {
        Ok(mut child) => {
            info!(
                pid = child.id(),
                "SIGUSR2: started the new daemon, which takes over once it serves"
            );
            // A plain thread: the runtime would wait for a blocking task at
            // exit, and this one ends only with the successor.
            std::thread::spawn(move || {
                if let Ok(status) = child.wait()
                    && !status.success()
                {
                    warn!(%status, "the new daemon did not take over; serving on");
                }
            });
        }
        Err(e) => warn!(error = %e, "SIGUSR2: cannot start the new daemon; serving on"),
    }
}

/// Keeps the XDP plane's backend MACs current (see
/// [`crate::dataplane::xdp::follow`]); a failure to start is logged.
fn follow_neighbours(
    xdp: Option<&Arc<Mutex<XdpPlane>>>,
    events: &mpsc::Sender<crate::runtime::events::Event>,
) {
    if let Some(x) = xdp
        && let Err(e) = crate::dataplane::xdp::follow::spawn(Arc::downgrade(x), events.clone())
    {
        warn!(error = %e, "cannot follow neighbour changes; a backend whose MAC changes stops receiving XDP traffic until a restart");
    }
}

/// What [`planes`] starts: the planes, and the announcements' stopper and
/// handle when configured.
type Started = (
    Vec<Box<dyn Plane>>,
    Option<crate::announce::control::Stopper>,
    Option<crate::announce::control::Handle>,
);

/// The planes the control loop keeps in step besides the proxies: the XDP
/// plane when it runs, and the announcements when configured.
async fn planes(
    config: &Arc<Config>,
    xdp: Option<&Arc<Mutex<XdpPlane>>>,
) -> Result<Started, RunError> {
    let mut planes: Vec<Box<dyn Plane>> = xdp
        .iter()
        .map(|x| Box::new((*x).clone()) as Box<dyn Plane>)
        .collect();
    let (mut stopper, mut handle) = (None, None);
    if let Some(announce) = &config.announce {
        let (plane, stop, control) =
            crate::announce::plane::AnnouncePlane::start(config.clone(), announce, xdp.is_some())
                .await
                .map_err(|source| RunError::Announce {
                    interface: announce.interface.clone(),
                    source,
                })?;
        planes.push(Box::new(plane));
        stopper = Some(stop);
        handle = Some(control);
    }
    Ok((planes, stopper, handle))
}

/// What this daemon hands a new one: its listeners' sockets, the admin
/// API's, and its XDP pin directory's lock, after which it writes no map.
fn offered(daemon: &Daemon) -> Vec<(upgrade::Kind, std::os::fd::OwnedFd)> {
    let mut sockets = daemon.listeners.handover_sockets();
    // The new daemon adopts the addresses as they are now.
    if let Some(announce) = &daemon.sources.announce {
        announce.freeze(true);
    }
    if let (Ok(address), Ok(fd)) = (
        // The admin address may be port 0 in the config: offer the bound one.
        admin_address(&daemon.admin),
        daemon.admin.try_clone(),
    ) {
        sockets.push((upgrade::Kind::Admin(address), fd));
    }
    if let Some(xdp) = &daemon.sources.xdp
        && let Ok(mut plane) = xdp.lock()
    {
        match plane.hand_over() {
            Ok((dir, lock)) => sockets.push((upgrade::Kind::Pins(dir), lock)),
            Err(e) => {
                warn!(error = %e, "cannot hand the XDP pin directory over; the new daemon's XDP plane will find it in use");
            }
        }
    }
    sockets
}

/// The local address of the admin API's socket.
fn admin_address(fd: &std::os::fd::OwnedFd) -> io::Result<SocketAddr> {
    let socket = std::net::TcpListener::from(fd.try_clone()?);
    socket.local_addr()
}

/// Resumes the planes handed to a new daemon that did not finish.
async fn take_back(events: &mpsc::Sender<crate::runtime::events::Event>) {
    let (reply, done) = tokio::sync::oneshot::channel();
    if events
        .send(crate::runtime::events::Event::TakeBack { reply })
        .await
        .is_ok()
    {
        let _ = done.await;
    }
}

/// How this start began, for status and the log: what the XDP plane
/// found, the daemon it took the sockets from, and how many listening
/// sockets systemd passed.
fn started(
    xdp: Option<&Arc<Mutex<XdpPlane>>>,
    activated: usize,
    upgraded_from: Option<u32>,
) -> String {
    let mut parts: Vec<String> = xdp
        .and_then(|x| x.lock().ok().map(|p| p.started.clone()))
        .into_iter()
        .collect();
    if let Some(pid) = upgraded_from {
        parts.push(format!(
            "upgraded from pid {pid} ({activated} listening sockets inherited)"
        ));
    } else if activated > 0 {
        parts.push(format!(
            "socket-activated ({activated} listening socket{} from systemd)",
            if activated == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        "fresh".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The status line systemd shows after a reload.
fn reloaded<E: std::fmt::Display>(done: &Result<String, E>) -> String {
    match done {
        Ok(_) => "serving; the last reload took effect".to_owned(),
        Err(e) => format!("serving the previous config; the last reload was refused: {e}"),
    }
}

/// Withdraws the announcements only this daemon answers (unless a new
/// daemon took over), stops accepting, lets open connections finish within
/// `grace`, then ends the daemon's tasks and removes the status file.
async fn shut_down(
    mut daemon: Daemon,
    (tracker, grace, which): (&Tracker, std::time::Duration, &str),
    announcements: Option<crate::announce::control::Stopper>,
    tasks: [tokio::task::JoinHandle<()>; 4],
) {
    // Withdraw before the listeners stop, so the router moves new flows
    // away first; after an upgrade the new daemon keeps them announced.
    if which != "upgrade"
        && let Some(announcements) = announcements
    {
        announcements.stop().await;
    }
    info!(
        signal = which,
        open = tracker.count(),
        ?grace,
        "stopping: no new connections; waiting for open ones"
    );
    daemon.listeners.stop().await;
    // The admin API is the new daemon's from here on.
    if which == "upgrade" {
        tasks[1].abort();
    }
    if tokio::time::timeout(grace, tracker.idle()).await.is_err() {
        warn!(
            open = tracker.count(),
            "grace period over; closing remaining connections"
        );
    }
    let state_dir = daemon.config.state_dir.clone();
    drop(daemon);
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    // After an upgrade the status file is the new daemon's.
    if which != "upgrade" {
        status::remove(&state_dir);
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGUSR2 handlers, installed before anything
/// serves.
fn signals() -> Result<[Signal; 4], RunError> {
    let install = |kind| signal(kind).map_err(RunError::Signals);
    Ok([
        install(SignalKind::interrupt())?,
        install(SignalKind::terminate())?,
        install(SignalKind::hangup())?,
        install(SignalKind::user_defined2())?,
    ])
}

/// Reads the admin token (if configured) and binds the admin API's socket,
/// before anything serves, so either failing stops the start cleanly.
async fn bind_admin(
    config: &Config,
    handed: Option<(SocketAddr, std::os::fd::OwnedFd)>,
) -> Result<
    (
        tokio::net::TcpListener,
        std::os::fd::OwnedFd,
        Option<String>,
    ),
    RunError,
> {
    let token = config
        .admin_token_file
        .as_deref()
        .map(|path| {
            admin::read_token(path).map_err(|source| RunError::Token {
                path: path.to_owned(),
                source,
            })
        })
        .transpose()?;
    let bind_error = |source| RunError::Admin {
        address: config.admin,
        source,
    };
    // The upgraded daemon's admin socket serves on, unless the address
    // changed.
    let socket = match handed {
        Some((address, fd)) if address == config.admin => {
            let socket = std::net::TcpListener::from(fd);
            socket.set_nonblocking(true).map_err(bind_error)?;
            tokio::net::TcpListener::from_std(socket).map_err(bind_error)?
        }
        _ => tokio::net::TcpListener::bind(config.admin)
            .await
            .map_err(bind_error)?,
    };
    // Kept to hand a new daemon (`run --upgrade`).
    let fd = std::os::fd::AsFd::as_fd(&socket)
        .try_clone_to_owned()
        .map_err(bind_error)?;
    Ok((socket, fd, token))
}

/// Starts the XDP plane. Its failure stops the start when an `xdp`
/// listener depends on it; `auto` listeners fall back to the proxy, loudly.
fn start_xdp(
    config: &crate::config::Config,
    inherited: Option<std::os::fd::OwnedFd>,
) -> Result<Option<XdpPlane>, RunError> {
    match XdpPlane::start(config, inherited) {
        Ok(plane) => Ok(plane),
        Err(source) => {
            if let Some(l) = config.listeners.iter().find(|l| l.mode == Mode::Xdp) {
                return Err(RunError::Xdp {
                    listener: l.name.clone(),
                    source: Box::new(source),
                });
            }
            warn!(error = %source, "XDP plane unavailable: `auto` listeners are served by the proxy plane");
            Ok(None)
        }
    }
}
