//! Plain round robin: each eligible backend in turn, weights ignored except
//! that weight 0 (draining) is never chosen.

use super::{Member, Request, Rotation, Selector};

/// Round-robin selector.
pub struct RoundRobin {
    eligible: Vec<bool>,
    next: Rotation,
}

impl RoundRobin {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            eligible: members.iter().map(|m| m.weight > 0).collect(),
            next: Rotation::default(),
        }
    }
}

impl Selector for RoundRobin {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        self.next
            .order(self.eligible.len())
            .find(|&i| self.eligible[i] && !(req.skip)(i))
    }
}
