//! Weighted least connections: the backend with the fewest active connections
//! per unit of weight. Ties rotate so that an idle pool still spreads new
//! connections instead of piling them on the first backend.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Member, Request, Selector};

/// Weighted least-connections selector.
pub struct LeastConnections {
    weights: Vec<u64>,
    rotate: AtomicUsize,
}

impl LeastConnections {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            weights: members.iter().map(|m| u64::from(m.weight)).collect(),
            rotate: AtomicUsize::new(0),
        }
    }
}

impl Selector for LeastConnections {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let start = self.rotate.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let w = self.weights[i];
            if w == 0 || (req.skip)(i) {
                continue;
            }
            let load = (req.load)(i);
            // Compare (load+1)/w across backends without division: a/b < c/d
            // <=> a*d < c*b. The +1 makes weight matter even at zero load.
            let better = best.is_none_or(|(b, bload)| {
                u128::from(load + 1) * u128::from(self.weights[b])
                    < u128::from(bload + 1) * u128::from(w)
            });
            if better {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }
}
