//! Announcements as a plane the control loop keeps in step: each state
//! change or reload hands the task below the config and the backends'
//! states (the latest wins), and the task moves the interface to what
//! [`super::decide`] says, re-deciding every half second as well, so an
//! address whose hold-down ends is announced without waiting for another
//! change. Netlink is asynchronous and the control loop is not, hence the
//! task.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    decide::{Announcer, wanted},
    kernel::{Interface, Kernel, KernelError},
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
    /// outlives the daemon. Waits up to 2 s for netlink.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

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
    ) -> Result<(Self, Stopper), KernelError> {
        let kernel = Kernel::connect()?;
        let interface = kernel.interface(&announce.interface).await?;
        if let Some(kind) = interface.created {
            info!(interface = %interface.name, kind, "created the announcement interface");
        }
        let present = kernel.addresses(interface.index).await?;
        let local = kernel.local_routes(interface.index).await?;
        let mut announcer = Announcer::new(HOLD);
        announcer.adopt(present.iter().map(|ip| (*ip, local.contains(ip))));
        let status = config
            .pools
            .iter()
            .map(|p| vec![Status::default(); p.backends.len()])
            .collect();
        let (tx, rx) = watch::channel(Snapshot { config, status });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            kernel,
            interface.clone(),
            announcer,
            (rx, stopped),
            xdp,
            announce.min_healthy,
        ));
        Ok((
            Self {
                interface: interface.name,
                tx,
            },
            Stopper { stop, task },
        ))
    }
}

async fn run(
    kernel: Kernel,
    interface: Interface,
    mut announcer: Announcer,
    (mut rx, mut stopped): (watch::Receiver<Snapshot>, watch::Receiver<bool>),
    xdp: bool,
    min_healthy: u32,
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = stopped.changed() => {
                for (ip, answer) in announcer.announced().clone() {
                    if !answer {
                        continue;
                    }
                    match kernel.remove(interface.index, ip).await {
                        Ok(()) => info!(%ip, interface = %interface.name, "withdrawn: the daemon stops"),
                        Err(e) => warn!(%ip, error = %e, "cannot withdraw at stop"),
                    }
                }
                return;
            }
            _ = tick.tick() => {}
        }
        let want = {
            let s = rx.borrow();
            wanted(
                &s.config,
                &s.status,
                &served_flags(xdp, &s.config),
                min_healthy,
            )
        };
        let changes = announcer.step(Instant::now(), &want, false);
        for ip in changes.remove {
            match kernel.remove(interface.index, ip).await {
                Ok(()) => info!(%ip, interface = %interface.name, "withdrawn"),
                Err(e) => warn!(%ip, error = %e, "cannot withdraw"),
            }
        }
        for (ip, answer) in changes.add {
            match kernel.add(interface.index, ip, answer).await {
                Ok(()) => info!(%ip, interface = %interface.name, answer, "announced"),
                Err(e) => warn!(%ip, error = %e, "cannot announce"),
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
