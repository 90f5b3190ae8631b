//! Weighted least connections: the backend with the fewest active connections
//! per unit of weight. Ties rotate so that an idle pool still spreads new
//! connections instead of piling them on the first backend.

use super::{Member, Request, Rotation, Selector};

/// Weighted least-connections selector.
pub struct LeastConnections {
    weights: Vec<u64>,
    rotate: Rotation,
}

impl LeastConnections {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            weights: members.iter().map(|m| u64::from(m.weight)).collect(),
            rotate: Rotation::default(),
        }
    }
}

impl Selector for LeastConnections {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for i in self.rotate.order(self.weights.len()) {
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
