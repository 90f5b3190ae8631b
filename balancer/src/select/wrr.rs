//! Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer`): each
//! pick adds every weight to its backend's running score, takes the highest
//! and subtracts the total from it. The sequence interleaves backends instead
//! of sending a heavy backend its whole share in a burst.

use std::sync::Mutex;

use super::{Member, Request, Selector};

/// Smooth weighted round-robin selector.
pub struct SmoothWeighted {
    weights: Vec<i64>,
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            weights: members.iter().map(|m| i64::from(m.weight)).collect(),
            current: Mutex::new(vec![0; members.len()]),
        }
    }
}

impl Selector for SmoothWeighted {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        // A poisoned lock only means another picker panicked mid-update; the
        // scores are still numbers, so keep going with them.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, &w) in self.weights.iter().enumerate() {
            if w == 0 || (req.skip)(i) {
                continue;
            }
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}
