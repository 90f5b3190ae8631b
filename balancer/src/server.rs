//! Runs a validated config: starts demo backends, binds every listener
//! (all before serving anything, so a bad address fails the start cleanly),
//! serves, and on SIGINT/SIGTERM stops accepting and lets open connections
//! finish within the grace period.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};
use tracing::{info, warn};

use crate::{
    admin,
    config::{
        Config,
        model::{Mode, Protocol},
    },
    dataplane::xdp::plane::{PlaneError, XdpPlane},
    demo,
    health::Monitor,
    proxy::{
        self,
        pipes::{MAX_PIPES, PipePool},
        tcp::TcpService,
        udp::UdpService,
    },
    publish,
    runtime::{
        Snapshot, Tracker,
        control::{Control, EVENT_QUEUE, Event, Passive},
    },
    status,
};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener's address could not be bound.
    #[error(
        "listener `{listener}`: cannot bind {protocol} `{address}`: {source} (is another process using it, or is the address not assigned to this host?)"
    )]
    Bind {
        /// Listener name.
        listener: String,
        /// Protocol.
        protocol: Protocol,
        /// Address.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A demo backend's address could not be bound.
    #[error("demo backend `{address}`: cannot bind: {source}")]
    Demo {
        /// Address.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A listener asks for a data plane this build cannot serve.
    #[error(
        "listener `{listener}`: mode `{mode}` is not available yet in this version; use `proxy` or `auto`"
    )]
    Unsupported {
        /// Listener name.
        listener: String,
        /// Requested mode.
        mode: Mode,
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
}

enum Bound {
    Tcp(tokio::net::TcpListener, Arc<TcpService>),
    Udp(tokio::net::UdpSocket, Arc<UdpService>),
}

/// Serves `config` until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), RunError> {
    raise_fd_limit();
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let grace = config.shutdown_grace;
    let snapshot = Snapshot::new(config);
    let config = snapshot.config.clone();
    let tracker = Tracker::default();
    let pipes = Arc::new(PipePool::new(MAX_PIPES));

    // Held until shutdown: dropping the last reference detaches the program.
    let (admin_socket, token) = bind_admin(&config).await?;
    let xdp = start_xdp(&config)?;
    let (events, inbox) = mpsc::channel(EVENT_QUEUE);
    let bound = bind(&snapshot, xdp.as_ref(), &pipes, &tracker, &events)?;
    demo::start(&config.demo_backends)
        .map_err(|(address, source)| RunError::Demo { address, source })?;
    let xdp_served: Vec<bool> = (0..config.listeners.len())
        .map(|i| xdp.as_ref().is_some_and(|p| p.serves(i)))
        .collect();
    let xdp = xdp.map(|p| Arc::new(Mutex::new(p)));
    let control =
        tokio::spawn(Control::new(config.clone(), snapshot.pools.clone(), xdp.clone()).run(inbox));
    let monitor = Monitor::start(&config, &events);

    let sources = Arc::new(publish::Sources {
        config: config.clone(),
        listeners: snapshot.listeners.clone(),
        pools: snapshot.pools.clone(),
        xdp_served,
        xdp: xdp.clone(),
    });
    let publisher = tokio::spawn(publish::run(sources.clone()));
    let admin = tokio::spawn(admin::serve(
        admin_socket,
        Arc::new(admin::Api {
            metrics: admin::metrics::Metrics::new(sources.clone()),
            sources,
            events: events.clone(),
            token,
        }),
    ));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        tasks.push(match b {
            Bound::Tcp(socket, svc) => {
                info!(listener = %svc.listener.name, address = %svc.listener.address, protocol = "tcp", plane = "proxy", pool = %svc.pool.load().name, algorithm = %svc.pool.load().algorithm, "listening");
                tokio::spawn(proxy::tcp::serve(socket, svc, stopped.clone()))
            }
            Bound::Udp(socket, svc) => {
                info!(listener = %svc.listener.name, address = %svc.listener.address, protocol = "udp", plane = "proxy", pool = %svc.pool.load().name, algorithm = %svc.pool.load().algorithm, "listening");
                tokio::spawn(proxy::udp::serve(socket, svc, stopped.clone()))
            }
        });
    }

    let which = tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
    };
    info!(
        signal = which,
        open = tracker.count(),
        ?grace,
        "stopping: no new connections; waiting for open ones"
    );
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    if tokio::time::timeout(grace, tracker.idle()).await.is_err() {
        warn!(
            open = tracker.count(),
            "grace period over; closing remaining connections"
        );
    }
    publisher.abort();
    let _ = publisher.await;
    admin.abort();
    let _ = admin.await;
    drop(events);
    drop(monitor);
    control.abort();
    let _ = control.await;
    status::remove(&config.state_dir);
    drop(xdp);
    info!("stopped");
    Ok(())
}

/// Reads the admin token (if configured) and binds the admin API's socket,
/// before anything serves, so either failing stops the start cleanly.
async fn bind_admin(
    config: &Config,
) -> Result<(tokio::net::TcpListener, Option<String>), RunError> {
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
    let socket = tokio::net::TcpListener::bind(config.admin)
        .await
        .map_err(|source| RunError::Admin {
            address: config.admin,
            source,
        })?;
    Ok((socket, token))
}

/// Binds a socket for every listener the proxy plane serves (all before any
/// is served, so a bad address fails the start cleanly) and logs the ones
/// the XDP plane serves.
fn bind(
    snapshot: &Snapshot,
    xdp: Option<&XdpPlane>,
    pipes: &Arc<PipePool>,
    tracker: &Tracker,
    events: &mpsc::Sender<Event>,
) -> Result<Vec<Bound>, RunError> {
    let mut bound = Vec::new();
    for (i, l) in snapshot.config.listeners.iter().enumerate() {
        if let Some(plane) = xdp.filter(|p| p.serves(i)) {
            info!(listener = %l.name, address = %l.address, protocol = %l.protocol, plane = "xdp",
                interface = %plane.interface, attach = %plane.attached, "listening");
            continue;
        }
        match l.mode {
            Mode::Proxy => {}
            Mode::Auto => {
                info!(listener = %l.name, "mode auto: served by the proxy plane (XDP needs the `xdp` section, a maglev pool and backends on the listener's port)");
            }
            Mode::Xdp | Mode::Http => {
                return Err(RunError::Unsupported {
                    listener: l.name.clone(),
                    mode: l.mode,
                });
            }
        }
        let bind_err = |source| RunError::Bind {
            listener: l.name.clone(),
            protocol: l.protocol,
            address: l.address,
            source,
        };
        let pool = snapshot.pools[l.pool].clone();
        let passive = Passive::new(l.pool, events.clone());
        let stats = snapshot.listeners[i].clone();
        bound.push(match l.protocol {
            Protocol::Tcp => Bound::Tcp(
                proxy::bind_tcp(l.address).map_err(bind_err)?,
                Arc::new(TcpService {
                    listener: l.clone(),
                    pool,
                    passive,
                    stats,
                    pipes: pipes.clone(),
                    tracker: tracker.clone(),
                }),
            ),
            Protocol::Udp => Bound::Udp(
                proxy::bind_udp(l.address).map_err(bind_err)?,
                Arc::new(UdpService {
                    listener: l.clone(),
                    pool,
                    passive,
                    stats,
                }),
            ),
        });
    }
    Ok(bound)
}

/// Starts the XDP plane. Its failure stops the start when an `xdp`
/// listener depends on it; `auto` listeners fall back to the proxy, loudly.
fn start_xdp(config: &crate::config::Config) -> Result<Option<XdpPlane>, RunError> {
    match XdpPlane::start(config) {
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

/// Each proxied connection costs two descriptors; lift the soft limit to the
/// hard one so the limit the operator granted is the one we get.
fn raise_fd_limit() {
    match rlimit_nofile() {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = set_rlimit_nofile(hard) {
                warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open-files limit"),
    }
}

#[allow(unsafe_code)]
fn rlimit_nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

#[allow(unsafe_code)]
fn set_rlimit_nofile(value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `lim` is a valid rlimit; raising the soft limit to the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
