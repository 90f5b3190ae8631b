//! The announcement task: decides every half second and on every change
//! the control loop sends, moves the interface by netlink, carries out the
//! operator's commands, and reconciles the interface with what it
//! announces.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::{
    control::{Ask, Command, CommandError},
    decide::{Announcer, Changes, wanted},
    kernel::{Interface, Kernel, KernelError},
    plane::{EVERY, Snapshot},
    report::Report,
};
use crate::dataplane::xdp::plane::served_flags;

/// The task's state.
pub(super) struct Task {
    pub(super) kernel: Kernel,
    pub(super) interface: Interface,
    pub(super) announcer: Announcer,
    pub(super) xdp: bool,
    pub(super) min_healthy: u32,
    pub(super) marker: PathBuf,
    pub(super) withdrawn: bool,
    /// Netlink's last refusal per address, until a change there succeeds.
    pub(super) failed: BTreeMap<IpAddr, String>,
    pub(super) frozen: Arc<AtomicBool>,
    pub(super) report: watch::Sender<Report>,
}

impl Task {
    pub(super) async fn run(
        mut self,
        mut rx: watch::Receiver<Snapshot>,
        mut stopped: watch::Receiver<bool>,
        mut inbox: mpsc::Receiver<Ask>,
    ) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut asked = None;
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                stop = stopped.changed() => {
                    // A dropped stopper: a new daemon took over and keeps
                    // every address as it is.
                    if stop.is_ok() && *stopped.borrow() {
                        self.withdraw_answered().await;
                    }
                    return;
                }
                Some((command, reply)) = inbox.recv() => {
                    match self.command(command) {
                        Ok(()) => asked = Some(reply),
                        Err(e) => { let _ = reply.send(Err(e)); }
                    }
                }
                _ = tick.tick() => {}
            }
            if self.frozen.load(Ordering::Acquire) {
                if let Some(reply) = asked {
                    let _ = reply.send(Err(CommandError::HandingOver));
                }
                continue;
            }
            let snapshot = {
                let s = rx.borrow();
                (s.config.clone(), s.status.clone())
            };
            let want = wanted(
                &snapshot.0,
                &snapshot.1,
                &served_flags(self.xdp, &snapshot.0),
                self.min_healthy,
            );
            let now = Instant::now();
            let changes = self.announcer.step(now, &want, self.withdrawn);
            self.apply(changes).await;
            self.reconcile().await;
            let vips =
                self.announcer
                    .report(now, &want, self.withdrawn, self.min_healthy, &self.failed);
            let report = Report {
                interface: self.interface.name.clone(),
                withdrawn: self.withdrawn,
                vips,
            };
            self.report.send_replace(report.clone());
            if let Some(reply) = asked {
                let _ = reply.send(Ok(report));
            }
        }
    }

    /// Records the operator's withdrawal (or its end) in the state
    /// directory first, so a restart keeps it.
    fn command(&mut self, command: Command) -> Result<(), CommandError> {
        let record = |e| CommandError::Record {
            path: self.marker.clone(),
            source: e,
        };
        match command {
            Command::Withdraw => {
                std::fs::write(
                    &self.marker,
                    "withdrawn by `balancer announce withdraw`; `balancer announce restore` ends it\n",
                )
                .map_err(record)?;
                if !self.withdrawn {
                    info!(interface = %self.interface.name, "the operator withdraws the host");
                }
                self.withdrawn = true;
            }
            Command::Restore => {
                match std::fs::remove_file(&self.marker) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(record(e)),
                }
                if self.withdrawn {
                    info!(interface = %self.interface.name, "the operator restores the host");
                }
                self.withdrawn = false;
            }
        }
        Ok(())
    }

    /// Moves the interface; a refused change is retried on the next step.
    async fn apply(&mut self, changes: Changes) {
        let name = self.interface.name.clone();
        for ip in changes.remove {
            match self.kernel.remove(self.interface.index, ip).await {
                Ok(()) => {
                    self.failed.remove(&ip);
                    info!(%ip, interface = %name, "withdrawn");
                }
                Err(e) => {
                    let answer = self.announcer.announced().get(&ip).copied().unwrap_or(true);
                    self.announcer.remove_failed(ip, answer);
                    self.refused(ip, "withdraw", &e);
                }
            }
        }
        for (ip, answer) in changes.add {
            match self.kernel.add(self.interface.index, ip, answer).await {
                Ok(()) => {
                    self.failed.remove(&ip);
                    info!(%ip, interface = %name, answer, "announced");
                }
                Err(e) => {
                    self.announcer.add_failed(ip);
                    self.refused(ip, "announce", &e);
                }
            }
        }
    }

    /// Makes the interface match what is announced, whatever changed it
    /// since: the kernel adds an IPv6 address's local route after duplicate
    /// address detection's work runs (also with it off), which may be
    /// after this task deleted it; an interface taken down and up gets
    /// its local routes back; someone may take an address off or put one
    /// on. The interface is this daemon's, so what it holds is put right.
    async fn reconcile(&mut self) {
        let index = self.interface.index;
        let (present, local) = match (
            self.kernel.addresses(index).await,
            self.kernel.local_routes(index).await,
        ) {
            (Ok(p), Ok(l)) => (p, l),
            (Err(e), _) | (_, Err(e)) => {
                debug!(error = %e, "cannot read the announcement interface back");
                return;
            }
        };
        let name = self.interface.name.clone();
        for (ip, answer) in self.announcer.announced().clone() {
            let fixed = if !present.contains(&ip) {
                warn!(%ip, interface = %name, "the address was taken off by something else; putting it back");
                self.kernel.add(index, ip, answer).await
            } else if !answer && local.contains(&ip) {
                debug!(%ip, "the kernel routed the address locally again; deleting that route");
                self.kernel.unroute_local(index, ip).await
            } else if answer && !local.contains(&ip) {
                debug!(%ip, "the address lost its local route; putting it back");
                self.kernel.route_local(index, ip).await
            } else {
                continue;
            };
            match fixed {
                Ok(()) => {
                    self.failed.remove(&ip);
                }
                Err(e) => self.refused(ip, "put the interface right for", &e),
            }
        }
        for ip in present {
            if !self.announcer.announced().contains_key(&ip) {
                warn!(%ip, interface = %name, "an address this daemon does not announce is on its interface; taking it off");
                if let Err(e) = self.kernel.remove(index, ip).await {
                    self.refused(ip, "take off", &e);
                }
            }
        }
    }

    /// Logs a refusal once per address until a change there succeeds.
    fn refused(&mut self, ip: IpAddr, what: &str, e: &KernelError) {
        let text = e.to_string();
        if self.failed.get(&ip) != Some(&text) {
            warn!(%ip, error = %text, "cannot {what}; retrying every half second");
        }
        self.failed.insert(ip, text);
    }

    /// A clean stop: takes off what the host answers for itself.
    async fn withdraw_answered(&self) {
        for (ip, answer) in self.announcer.announced().clone() {
            if !answer {
                continue;
            }
            match self.kernel.remove(self.interface.index, ip).await {
                Ok(()) => {
                    info!(%ip, interface = %self.interface.name, "withdrawn: the daemon stops");
                }
                Err(e) => warn!(%ip, error = %e, "cannot withdraw at stop"),
            }
        }
    }
}
