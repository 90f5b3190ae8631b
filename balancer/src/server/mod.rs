//! Runs a validated config: starts demo backends, binds every listener
//! (all before serving anything, so a bad address fails the start cleanly),
//! serves, reloads on SIGHUP or an admin request ([`reload`]), and on
//! SIGINT/SIGTERM stops accepting and lets open connections finish within
//! the grace period.

mod activation;
mod discovered;
mod listeners;
mod notify;
mod reload;
mod serve;
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
use crate::discover::{Registry, Report};
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
    let (mut received, handover) = handed(&config, upgrade)?;
    let config = Arc::new(config);
    let tracker = Tracker::default();

    let (admin_socket, admin_fd, token) = bind_admin(&config, received.admin.take()).await?;
    let (read, mut discovery, mut reports) = discover(config).await;
    // Held until shutdown; its pinned link keeps the program attached after.
    let (config, xdp) = discovered_xdp(&read, &mut discovery, received.pins.take())?;
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
        discovery: ArcSwap::from_pointee(discovery.status()),
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
        read,
        discovery,
        upstream_tls,
        discovery_pending: false,
        file,
        generation: 0,
        pools,
        listeners,
        sources,
        events,
        admin: admin_fd,
    };
    let which = serve::serve(&mut daemon, signals, &mut reload_rx, &mut reports, handover).await;
    shut_down(
        daemon,
        (&tracker, which),
        announcements,
        [publisher, admin, control, trimmer],
    )
    .await;
    drop(xdp);
    info!("stopped");
    Ok(())
}

/// With `upgrade`, the sockets of the daemon running with `config`'s
/// `state_dir`, and the conversation with it; otherwise nothing.
fn handed(
    config: &Config,
    upgrade: bool,
) -> Result<
    (
        upgrade::Received,
        Option<(std::os::unix::net::UnixStream, u32)>,
    ),
    RunError,
> {
    if !upgrade {
        return Ok((upgrade::Received::default(), None));
    }
    let (received, conversation, old) = upgrade::take_over(&config.state_dir)?;
    Ok((received, Some((conversation, old))))
}

/// Starts the discovery sources `read` names and waits (up to
/// [`FIRST_ROUNDS`]) for their first sets. Returns the config as read, the
/// sources and their reports.
async fn discover(read: Arc<Config>) -> (Arc<Config>, Registry, mpsc::Receiver<Report>) {
    let (tx, mut reports) = mpsc::channel(REPORTS);
    let mut registry = Registry::new(tx);
    registry.follow(&read);
    registry.first_rounds(&mut reports, FIRST_ROUNDS).await;
    (read, registry, reports)
}

/// The config to serve (`read` with what `discovery` found) and the XDP
/// plane started with it, so its maps begin with the discovered backends
/// too. `pins` is the pin directory's lock an upgraded daemon handed over.
fn discovered_xdp(
    read: &Arc<Config>,
    discovery: &mut Registry,
    pins: Option<(std::path::PathBuf, std::os::fd::OwnedFd)>,
) -> Result<(Arc<Config>, Option<XdpPlane>), RunError> {
    let mut planned = |xdp| Arc::new(discovery.merge(read, xdp, None));
    let config = planned(read.xdp.is_some());
    let xdp = start_xdp(&config, pins.map(|(_, lock)| lock))?;
    if xdp.is_some() == read.xdp.is_some() {
        Ok((config, xdp))
    } else {
        Ok((planned(xdp.is_some()), xdp))
    }
}

/// The longest a start waits for the discovery sources' first answers;
/// a pool whose source has not answered by then starts with its static
/// backends and takes the others when they come.
const FIRST_ROUNDS: std::time::Duration = std::time::Duration::from_secs(5);
/// Reports queued from the discovery tasks.
const REPORTS: usize = 64;

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

/// Withdraws the announcements only this daemon answers (unless a new
/// daemon took over), stops accepting, lets open connections finish within
/// `shutdown_grace` (of the config serving now), then ends the daemon's
/// tasks and removes the status file.
async fn shut_down(
    mut daemon: Daemon,
    (tracker, which): (&Tracker, &str),
    announcements: Option<crate::announce::control::Stopper>,
    tasks: [tokio::task::JoinHandle<()>; 4],
) {
    let grace = daemon.config.shutdown_grace;
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
