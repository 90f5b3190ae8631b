//! Plain round robin: each eligible backend in turn, weights ignored except
//! that weight 0 (draining) is never chosen.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Member, Request, Selector};

/// Round-robin selector.
pub struct RoundRobin {
    eligible: Vec<bool>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            eligible: members.iter().map(|m| m.weight > 0).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Selector for RoundRobin {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        let n = self.eligible.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.eligible[i] && !(req.skip)(i))
    }
}
