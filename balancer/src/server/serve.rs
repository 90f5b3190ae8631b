//! The serving loop: reloads on SIGHUP and admin requests, applies what
//! the discovery sources report, swaps certificate files changed on disk,
//! pings the systemd watchdog, offers the listening sockets to `run
//! --upgrade` and starts such a successor itself on SIGUSR2, until a
//! signal or a successor ends it.

use std::{io, net::SocketAddr};

use tokio::{signal::unix::Signal, sync::mpsc};
use tracing::{info, warn};

use super::{notify, reload::Daemon, upgrade};
use crate::{discover::Report, reload::ReloadRequest};

/// Serves until SIGINT, SIGTERM or a new daemon that took the sockets
/// over (whose name it returns): reloads on SIGHUP and admin requests,
/// swaps certificate files changed on disk, pings the systemd watchdog,
/// tells systemd each step, offers the listening sockets to `run
/// --upgrade`, and starts such a successor itself on SIGUSR2. `handover`
/// is the conversation with the daemon this one took the sockets from:
/// told `SERVING` once this one serves.
pub(super) async fn serve(
    daemon: &mut Daemon,
    [mut sigint, mut sigterm, mut sighup, mut sigusr2]: [Signal; 4],
    reload_rx: &mut mpsc::Receiver<ReloadRequest>,
    reports: &mut mpsc::Receiver<Report>,
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
            Some(report) = reports.recv() => daemon.discovered(report).await,
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

/// The status line systemd shows after a reload.
fn reloaded<E: std::fmt::Display>(done: &Result<String, E>) -> String {
    match done {
        Ok(_) => "serving; the last reload took effect".to_owned(),
        Err(e) => format!("serving the previous config; the last reload was refused: {e}"),
    }
}
