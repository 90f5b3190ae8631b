//! When a name is asked again: at its records' TTL, kept between the
//! source's `min_interval` and `max_interval`; after a failure, sooner
//! (from `min_interval`, doubling with each failure in a row, up to
//! `max_interval`), so a resolver that comes back is seen quickly and one
//! that stays away is not hammered.

use std::time::Duration;

/// How long to wait before the next lookup, after a lookup that found
/// records living `ttl`, within `[min, max]`.
#[must_use]
pub fn after_success(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.clamp(min, max.max(min))
}

/// How long to wait after the `streak`th failure in a row (1 for the
/// first).
#[must_use]
pub fn after_failure(streak: u32, min: Duration, max: Duration) -> Duration {
    let doubled = min.saturating_mul(1u32 << streak.saturating_sub(1).min(20));
    doubled.min(max.max(min))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{after_failure, after_success};

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_ttl_decides_within_the_bounds() {
        assert_eq!(after_success(S(30), S(1), S(300)), S(30));
        assert_eq!(after_success(S(0), S(1), S(300)), S(1));
        assert_eq!(after_success(S(86_400), S(1), S(300)), S(300));
    }

    #[test]
    fn failures_back_off_from_the_minimum_to_the_maximum() {
        let waits: Vec<Duration> = (1..=8).map(|n| after_failure(n, S(1), S(30))).collect();
        assert_eq!(waits, [S(1), S(2), S(4), S(8), S(16), S(30), S(30), S(30)]);
        assert_eq!(after_failure(u32::MAX, S(1), S(30)), S(30));
    }
}
