//! The operator's and the daemon's handles on the announcement task:
//! withdraw or restore the host, read the report, freeze it while an
//! upgrade hands over, stop it cleanly.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};

use super::report::Report;

/// The daemon's handle on the announcement task, for a clean stop.
pub struct Stopper {
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<()>,
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

/// A command and where its answer goes.
pub(super) type Ask = (Command, oneshot::Sender<Result<Report, CommandError>>);

/// The admin API's and the daemon's handle on the announcements.
#[derive(Clone)]
pub struct Handle {
    pub(super) commands: mpsc::Sender<Ask>,
    pub(super) report: watch::Receiver<Report>,
    pub(super) frozen: Arc<AtomicBool>,
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
