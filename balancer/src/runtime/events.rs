//! What the control loop hears: check outcomes, the proxies' failures,
//! operators' requests and reloads, and the types they carry.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::{
    LivePool,
    failure::Failure,
    guard_lists::{ListChange, ListError, ListsView},
    plane::WriteError,
    state::State,
};
use crate::config::Config;

/// Room for events between the producers and the loop. Proxies never wait
/// for it: a passive report that finds it full is dropped, because the
/// active checks will tell the same story.
pub const EVENT_QUEUE: usize = 1024;

/// Something the control loop must hear about.
pub enum Event {
    /// An active check's outcome: its latency, or why it failed.
    Check {
        /// The config generation the check was started for; events of an
        /// older one (before a reload) are ignored.
        generation: u64,
        /// Pool index.
        pool: usize,
        /// Backend index in the pool.
        backend: usize,
        /// Outcome.
        outcome: Result<Duration, Failure>,
    },
    /// An operator's request, answered on `reply` with the backend's new
    /// state.
    Admin {
        /// Pool name.
        pool: String,
        /// Backend address.
        backend: SocketAddr,
        /// What to do.
        action: Action,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<State, AdminError>>,
    },
    /// A new config, validated: carry every backend's state and counters
    /// over to it (matched by pool name and address), rewrite the XDP maps,
    /// and swap in the new pools. Answered on `reply`; an error changes
    /// nothing.
    Reload {
        /// The new config.
        config: Arc<Config>,
        /// Its pools, by index (pools kept by name are the same `Arc`).
        pools: Vec<Arc<LivePool>>,
        /// Its generation.
        generation: u64,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
    /// An operator's change to the guard lists (or a request to see
    /// them), answered on `reply` with every list as it now is.
    Guard {
        /// What to do.
        change: ListChange,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<GuardAnswer, ListError>>,
    },
    /// A liveness probe: answered as soon as the loop reaches it, so the
    /// systemd watchdog is pinged only while the loop is not stuck.
    Ping {
        /// Where the answer goes.
        reply: oneshot::Sender<()>,
    },
    /// An upgrade this daemon handed its planes to failed before the new
    /// daemon served: the planes resume writing, from the current states.
    TakeBack {
        /// Where the answer goes once they have.
        reply: oneshot::Sender<()>,
    },
    /// A backend's next hop answers from a new MAC, which the XDP plane
    /// recorded: every plane is rewritten from the current states.
    NextHops,
    /// A connection a proxy could not make (refused, timed out).
    Passive {
        /// The config generation of the reporting listener.
        generation: u64,
        /// Pool index.
        pool: usize,
        /// Backend index in the pool.
        backend: usize,
        /// What went wrong.
        failure: Failure,
    },
}

/// The answer to a guard list request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GuardAnswer {
    /// Whether the lists changed (adding an entry already there does not).
    pub changed: bool,
    /// Every list as it now is.
    pub lists: ListsView,
}

/// What an operator asks of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No new flows; established ones carry on.
    Drain,
    /// Back to following its health checks.
    Enable,
    /// Out of rotation, established flows placed elsewhere (XDP).
    Disable,
    /// A new weight for new flows.
    Weight(u32),
}

/// Why an operator's request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such pool.
    #[error("no pool named `{0}`")]
    NoPool(String),
    /// No such backend in the pool.
    #[error("pool `{pool}` has no backend `{backend}`")]
    NoBackend {
        /// Pool name.
        pool: String,
        /// Address asked for.
        backend: SocketAddr,
    },
    /// Weight out of range.
    #[error("weight {0} is out of range; use 0 to {MAX_WEIGHT}")]
    BadWeight(u32),
}

impl AdminError {
    /// The HTTP status the admin API answers with.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            AdminError::NoPool(_) | AdminError::NoBackend { .. } => 404,
            AdminError::BadWeight(_) => 400,
        }
    }
}

pub use crate::config::limits::MAX_WEIGHT;

/// Where a proxy reports the failures it sees for one pool.
#[derive(Clone, Debug)]
pub struct Passive {
    pool: usize,
    generation: u64,
    events: mpsc::Sender<Event>,
}

impl Passive {
    /// Reports to `events` for pool `pool` of config `generation`.
    #[must_use]
    pub fn new(pool: usize, generation: u64, events: mpsc::Sender<Event>) -> Self {
        Self {
            pool,
            generation,
            events,
        }
    }

    /// Backend `backend` failed with `failure`. Never waits.
    pub fn report(&self, backend: usize, failure: Failure) {
        let _ = self.events.try_send(Event::Passive {
            generation: self.generation,
            pool: self.pool,
            backend,
            failure,
        });
    }
}
