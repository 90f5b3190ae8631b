//! Runs a validated config: starts demo backends, binds every listener
//! (all before serving anything, so a bad address fails the start cleanly),
//! serves, and on SIGINT/SIGTERM stops accepting and lets open connections
//! finish within the grace period.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing::{info, warn};

use crate::{
    config::{
        Config,
        model::{Mode, Protocol},
    },
    demo,
    proxy::{
        self,
        pipes::{MAX_PIPES, PipePool},
        tcp::TcpService,
        udp::UdpService,
    },
    runtime::{Snapshot, Tracker},
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

    let mut bound = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        match l.mode {
            Mode::Proxy => {}
            Mode::Auto => {
                info!(listener = %l.name, "mode auto: serving in proxy mode (the XDP data plane is not in this version)");
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
        let stats = snapshot.listeners[i].clone();
        bound.push(match l.protocol {
            Protocol::Tcp => Bound::Tcp(
                proxy::bind_tcp(l.address).map_err(bind_err)?,
                Arc::new(TcpService {
                    listener: l.clone(),
                    pool,
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
                    stats,
                }),
            ),
        });
    }
    demo::start(&config.demo_backends)
        .map_err(|(address, source)| RunError::Demo { address, source })?;

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        tasks.push(match b {
            Bound::Tcp(socket, svc) => {
                info!(listener = %svc.listener.name, address = %svc.listener.address, protocol = "tcp", pool = %svc.pool.name, algorithm = %svc.pool.algorithm, "listening");
                tokio::spawn(proxy::tcp::serve(socket, svc, stopped.clone()))
            }
            Bound::Udp(socket, svc) => {
                info!(listener = %svc.listener.name, address = %svc.listener.address, protocol = "udp", pool = %svc.pool.name, algorithm = %svc.pool.algorithm, "listening");
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
    info!("stopped");
    Ok(())
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
