//! Announcements as a plane the control loop keeps in step: each state
//! change or reload hands the task below the config and the backends'
//! states (the latest wins), and the task moves the interface to what
//! [`super::decide`] says, re-deciding every half second as well, so an
//! address whose hold-down ends is announced without waiting for another
//! change. Netlink is asynchronous and the control loop is not, hence the
//! task.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    control::{Handle, Stopper, WITHDRAWN_FILE},
    decide::{Announcer, settle_time},
    kernel::{Kernel, KernelError},
    report::Report,
    task::Task,
};
use crate::{
    config::{Config, model::Announce},
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
pub(super) const EVERY: Duration = Duration::from_millis(500);

/// What the task decides from.
pub(super) struct Snapshot {
    pub(super) config: Arc<Config>,
    pub(super) status: Vec<Vec<Status>>,
}

/// The control loop's handle on the announcements.
pub struct AnnouncePlane {
    interface: String,
    tx: watch::Sender<Snapshot>,
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
