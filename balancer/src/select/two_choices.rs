//! Power of two choices: sample two backends at random in proportion to
//! their weights and take the one with less load per weight. Nearly as even
//! as least connections while reading only two backends' counters.

use std::cell::Cell;

use super::{Member, Request, Selector};

/// Power-of-two-choices selector.
pub struct TwoChoices {
    weights: Vec<u64>,
    /// Running sums of weights, for weighted sampling by binary search.
    cumulative: Vec<u64>,
}

impl TwoChoices {
    /// Builds from the pool's members.
    pub fn new(members: &[Member]) -> Self {
        let weights: Vec<u64> = members.iter().map(|m| u64::from(m.weight)).collect();
        let cumulative = weights
            .iter()
            .scan(0, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        Self {
            weights,
            cumulative,
        }
    }

    fn sample(&self, r: u64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let x = r % total;
        self.cumulative.partition_point(|&c| c <= x)
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    (t ^ (&raw const local as u64)) | 1
}

/// xorshift64*: fast, good enough for load sampling, never for secrets.
fn random() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

impl Selector for TwoChoices {
    fn select(&self, req: &Request<'_>) -> Option<usize> {
        if self.cumulative.last().copied().unwrap_or(0) == 0 {
            return None;
        }
        // Sampling may hit skipped backends; a few tries, then a full scan
        // keeps the worst case bounded and still finds any eligible one.
        let mut picks = [None, None];
        let mut found = 0;
        for _ in 0..8 {
            let i = self.sample(random());
            if !(req.skip)(i) && picks[0] != Some(i) {
                picks[found] = Some(i);
                found += 1;
                if found == 2 {
                    break;
                }
            }
        }
        if found == 0 {
            return (0..self.weights.len()).find(|&i| self.weights[i] > 0 && !(req.skip)(i));
        }
        let (Some(a), Some(b)) = (picks[0], picks[1]) else {
            return picks[0];
        };
        // (load_a+1)/w_a <= (load_b+1)/w_b, cross-multiplied to stay in integers.
        let lhs = u128::from((req.load)(a) + 1) * u128::from(self.weights[b]);
        let rhs = u128::from((req.load)(b) + 1) * u128::from(self.weights[a]);
        Some(if lhs <= rhs { a } else { b })
    }
}
