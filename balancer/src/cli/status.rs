//! `balancer status`: the running daemon's listeners, planes and counters,
//! read from the status file it writes in its `state_dir` (no admin API
//! needed, so it works without a token).

use std::path::Path;

use balancer::status::{self, StatusError};

/// The status file under `state_dir`, rendered for a terminal.
pub(crate) fn status(state_dir: &Path) -> Result<String, StatusError> {
    status::read(state_dir).map(|s| status::render(&s, status::now_ms()))
}
