//! The systemd notification protocol (`sd_notify(3)`), spoken without
//! libsystemd: datagrams to the socket `NOTIFY_SOCKET` names (a path, or
//! `@name` in the abstract namespace). `READY=1` once every listener serves
//! and XDP is attached, `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1`
//! around each reload, `STOPPING=1` when shutting down, and `WATCHDOG=1`
//! every half `WATCHDOG_USEC` while the control loop answers a ping. Without
//! `NOTIFY_SOCKET` every call does nothing.

use std::{
    io,
    os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::runtime::control::Event;

/// Where notifications go, if systemd (or a test) asked for them.
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// How often the watchdog wants a ping, when it is on for this process.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` (honoured
    /// unless `WATCHDOG_PID` names another process).
    #[must_use]
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|path| match connect(&path) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(socket = %path, error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                    None
                }
            });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us && socket.is_some())
            .map(|u| Duration::from_micros(u) / 2);
        Self { socket, watchdog }
    }

    /// Sends `state` (newline-separated `KEY=value` lines); a failure is
    /// logged and otherwise ignored: notifying must never stop serving.
    pub fn send(&self, state: &str) {
        let Some((socket, to)) = &self.socket else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), to) {
            debug!(error = %e, "cannot notify systemd");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the monotonic clock systemd wants beside it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::runtime::monotonic_ns() / 1_000
        ));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: draining open connections");
    }

    /// Pings the watchdog if the control loop behind `events` answers
    /// within the watchdog's half period: a stuck loop stops the pings and
    /// systemd restarts the daemon.
    pub async fn watchdog(&self, events: &mpsc::Sender<Event>) {
        let Some(period) = self.watchdog else { return };
        let (reply, answer) = oneshot::channel();
        if events.send(Event::Ping { reply }).await.is_err() {
            return;
        }
        if tokio::time::timeout(period, answer)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            self.send("WATCHDOG=1");
        } else {
            warn!("the control loop did not answer within {period:?}: not pinging the watchdog");
        }
    }
}

fn connect(path: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    // Never wait on systemd: a full queue loses one notification, not the
    // daemon's time.
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}
