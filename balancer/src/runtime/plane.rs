//! The seam between the control loop and the planes that act on backend
//! states besides the proxies: today the XDP maps, next the BGP
//! announcements. The control loop writes a change to every plane before it
//! keeps the change, so a plane that refuses a write leaves everything as it
//! was; the proxies' pools are swapped in process and cannot fail.

use super::state::Status;
use crate::config::Config;

/// Why a plane refused a write: the plane's own error, kept whole.
pub type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// A plane the control loop keeps in step with the config, the backend
/// states and the guard lists.
pub trait Plane: Send {
    /// The plane's name, for logs.
    fn name(&self) -> &'static str;

    /// Whether this plane enforces the guard lists; a list change needs
    /// one that does.
    fn guards(&self) -> bool;

    /// Moves to a reloaded `config` whose backends are in `status` (by
    /// pool, then backend, in config order). An error leaves the plane as
    /// it was.
    fn reload(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError>;

    /// Rewrites the plane for the running config after a backend state or
    /// a guard list changed. An error leaves the plane as it was.
    fn update(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError>;

    /// Resumes writing after a handover to a new daemon (`run --upgrade`)
    /// that failed before it served, from `config` with backends in
    /// `status`. Planes that hand nothing over have nothing to do.
    fn take_back(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        let _ = (config, status);
        Ok(())
    }
}
