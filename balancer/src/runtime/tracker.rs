//! Counts open connections so shutdown can wait for them to finish, up to
//! the grace period, without keeping a handle per task.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::Notify;

/// Shared count of open connections.
#[derive(Clone, Default)]
pub struct Tracker(Arc<Inner>);

#[derive(Default)]
struct Inner {
    open: AtomicUsize,
    idle: Notify,
}

/// One open connection; decrements the count on drop.
pub struct ConnectionGuard(Tracker);

impl Tracker {
    /// Registers a connection until the guard is dropped.
    #[must_use]
    pub fn open(&self) -> ConnectionGuard {
        self.0.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    /// Connections open now.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.open.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.0.idle.notify_waiters();
        }
    }
}
