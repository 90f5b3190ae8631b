//! Announcements as a plane the control loop keeps in step: each state
//! change or reload hands the task below the config and the backends'
//! states (the latest wins), and the task moves the interface to what
//! [`super::decide`] says, re-deciding every half second as well, so an
//! address whose hold-down ends is announced without waiting for another
//! change. Netlink is asynchronous and the control loop is not, hence the
//! task.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::{
    decide::{Announcer, Changes, settle_time, wanted},
    kernel::{Interface, Kernel, KernelError},
    report::Report,
};
use crate::{
    config::{Config, model::Announce},
    dataplane::xdp::plane::served_flags,
    runtime::{
        plane::{Plane, WriteError},
        state::Status,
    },
};

/// How long an address must qualify before it is announced (again): a
/// flapping pool does not flap routes, and a fresh start lets the first
/// checks settle.
pub const HOLD: Duration = Duration::from_secs(3);
/// How often the task re-decides without a change.
const EVERY: Duration = Duration::from_millis(500);

/// What the task decides from.
struct Snapshot {
    config: Arc<Config>,
    status: Vec<Vec<Status>>,
}

/// The control loop's handle on the announcements.
pub struct AnnouncePlane {
    interface: String,
    tx: watch::Sender<Snapshot>,
}

/// The daemon's handle on the announcement task, for a clean stop.
pub struct Stopper {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Stopper {
    /// A clean stop: the addresses this host answers for itself (proxy and
    /// http listeners) are withdrawn, since nothing will answer there now;
    /// those only the XDP program serves stay announced, as the program
    /// outlives the daemon. Waits up to 2 s for netlink. Dropping the
    /// stopper instead (a new daemon took over) ends the task and leaves
    /// every address as it is.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// What the operator asks of the announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Take every address off (host maintenance); lasts across restarts.
    Withdraw,
    /// Put back those that qualify.
    Restore,
}

/// Why a [`Command`] was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The withdrawal could not be recorded in the state directory, so a
    /// restart would announce again; nothing changed.
    #[error(
        "cannot record the withdrawal in `{path}`: {source}; nothing changed (check the state_dir's permissions)"
    )]
    Record {
        /// The marker file.
        path: PathBuf,
        /// What the filesystem said.
        #[source]
        source: std::io::Error,
    },
    /// A new daemon is taking over; it owns the announcements now.
    #[error("an upgrade is handing this daemon's work to a new one; ask again in a moment")]
    HandingOver,
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
}

impl CommandError {
    /// The HTTP status the admin API answers with.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            CommandError::Record { .. } => 500,
            CommandError::HandingOver | CommandError::Stopping => 503,
        }
    }
}

type Ask = (Command, oneshot::Sender<Result<Report, CommandError>>);

/// The admin API's and the daemon's handle on the announcements.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Ask>,
    report: watch::Receiver<Report>,
    frozen: Arc<AtomicBool>,
}

impl Handle {
    /// The announcements as of the task's last decision.
    #[must_use]
    pub fn report(&self) -> Report {
        self.report.borrow().clone()
    }

    /// Carries out `command` and returns the announcements after it.
    pub async fn ask(&self, command: Command) -> Result<Report, CommandError> {
        if self.frozen.load(Ordering::Acquire) {
            return Err(CommandError::HandingOver);
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| CommandError::Stopping)?;
        rx.await.map_err(|_| CommandError::Stopping)?
    }

    /// While an upgrade hands the daemon's work over, the task changes
    /// nothing on the interface (the new daemon adopts what is there);
    /// `false` resumes, when the upgrade is abandoned.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Release);
    }
}

/// The file in the state directory whose presence says the operator
/// withdrew the host, so a restart or an upgrade keeps it withdrawn.
pub const WITHDRAWN_FILE: &str = "announce-withdrawn";

impl AnnouncePlane {
    /// Opens netlink, makes or adopts the interface of `announce`, takes
    /// what is on it as announced, and starts the task, which decides from
    /// `config` with every backend up until the control loop says more.
    /// `xdp` says whether the XDP plane runs (its listeners' addresses are
    /// never answered by the host).
    pub async fn start(
        config: Arc<Config>,
        announce: &Announce,
        xdp: bool,
    ) -> Result<(Self, Stopper, Handle), KernelError> {
        let kernel = Kernel::connect()?;
        let interface = kernel.interface(&announce.interface).await?;
        if let Some(kind) = interface.created {
            info!(interface = %interface.name, kind, "created the announcement interface");
        }
        let present = kernel.addresses(interface.index).await?;
        let local = kernel.local_routes(interface.index).await?;
        let mut announcer = Announcer::new(HOLD);
        announcer.settle(Instant::now() + settle_time(&config));
        announcer.adopt(present.iter().map(|ip| (*ip, local.contains(ip))));
        let marker = config.state_dir.join(WITHDRAWN_FILE);
        let withdrawn = marker.exists();
        if withdrawn {
            warn!(marker = %marker.display(), "the host stays withdrawn, as the operator left it; `balancer announce restore` puts it back");
        }
        let status = config
            .pools
            .iter()
            .map(|p| vec![Status::default(); p.backends.len()])
            .collect();
        let (tx, rx) = watch::channel(Snapshot { config, status });
        let (stop, stopped) = watch::channel(false);
        let (report_tx, report) = watch::channel(Report {
            interface: interface.name.clone(),
            withdrawn,
            vips: Vec::new(),
        });
        let (commands, inbox) = mpsc::channel(8);
        let frozen = Arc::new(AtomicBool::new(false));
        let task = Task {
            kernel,
            interface: interface.clone(),
            announcer,
            xdp,
            min_healthy: announce.min_healthy,
            marker,
            withdrawn,
            failed: BTreeMap::new(),
            frozen: frozen.clone(),
            report: report_tx,
        };
        let task = tokio::spawn(task.run(rx, stopped, inbox));
        Ok((
            Self {
                interface: interface.name,
                tx,
            },
            Stopper { stop, task },
            Handle {
                commands,
                report,
                frozen,
            },
        ))
    }
}

/// The task's state.
struct Task {
    kernel: Kernel,
    interface: Interface,
    announcer: Announcer,
    xdp: bool,
    min_healthy: u32,
    marker: PathBuf,
    withdrawn: bool,
    /// Netlink's last refusal per address, until a change there succeeds.
    failed: BTreeMap<IpAddr, String>,
    frozen: Arc<AtomicBool>,
    report: watch::Sender<Report>,
}

impl Task {
    async fn run(
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

impl AnnouncePlane {
    fn send(&self, config: &Config, status: &[Vec<Status>]) {
        self.tx.send_replace(Snapshot {
            config: Arc::new(config.clone()),
            status: status.to_vec(),
        });
    }
}

impl Plane for AnnouncePlane {
    fn name(&self) -> &'static str {
        "announce"
    }

    fn guards(&self) -> bool {
        false
    }

    fn reload(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        match &config.announce {
            Some(a) if a.interface == self.interface => {
                self.send(config, status);
                Ok(())
            }
            Some(a) => Err(format!(
                "announce.interface changed from `{}` to `{}`; moving the announcements needs a restart",
                self.interface, a.interface
            )
            .into()),
            None => Err(
                "the new config has no `announce` section; withdrawing every VIP for good needs a restart (or `balancer announce withdraw`)"
                    .into(),
            ),
        }
    }

    fn update(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        self.send(config, status);
        Ok(())
    }
}
