//! Source-address hash by weighted rendezvous hashing (highest random
//! weight): each backend scores the client, the highest score wins. Unlike
//! `hash % n`, removing or skipping a backend moves only that backend's
//! clients, and a skipped backend's clients fall to their second choice.

use balancer_common::hash::addr_hash;

use super::{Member, Request, Selector, maglev::backend_identity};

/// Source-hash selector.
pub struct SourceHash {
    /// Per backend: identity seed and weight.
    members: Vec<(u32, f64)>,
}

impl SourceHash {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        Self {
            members: members
                .iter()
                .map(|m| {
                    let (addr, seed) = backend_identity(m.address);
                    (addr_hash(&addr, seed ^ 0x5eed_0001), f64::from(m.weight))
                })
                .collect(),
        }
    }
}

impl Selector for SourceHash {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, &(id, weight)) in self.members.iter().enumerate() {
            if weight == 0.0 || (req.skip)(i) {
                continue;
            }
            let h = super::remix(req.source_hash ^ id);
            // Uniform in (0, 1]; -w / ln(u) gives each backend a share
            // proportional to its weight.
            let u = (f64::from(h) + 1.0) / 4_294_967_296.0;
            let score = -weight / u.ln();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }
}
