//! What the admin API lets in: the bearer token (compared in constant
//! time), a bound on open connections and on requests per second, no
//! request bodies, and small request heads, so the API can neither be
//! guessed at byte by byte nor starve the data planes it shares the
//! runtime with.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Admin connections open at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head (line and headers) read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a connection has to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests per second the API answers, over all clients.
pub const RATE: u32 = 200;
/// Requests allowed in a burst above [`RATE`].
pub const BURST: u32 = 400;

/// Whether `given` is the token `want`. Takes the same time for every
/// `given` of a length, whichever bytes differ, so timing tells an
/// attacker nothing about how much of a guess was right.
#[must_use]
pub fn same_token(given: &[u8], want: &[u8]) -> bool {
    let mut diff = given.len() ^ want.len();
    for (i, w) in want.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ w);
    }
    diff == 0
}

/// A token bucket over all admin requests.
pub struct Rate {
    state: Mutex<(f64, Instant)>,
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// A full bucket of `burst`, refilled at `per_sec`.
    #[must_use]
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new((f64::from(burst), Instant::now())),
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
        }
    }

    /// Takes one request's token; `false` when the bucket is empty.
    pub fn allow(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, then) = *s;
        let tokens =
            (tokens + now.duration_since(then).as_secs_f64() * self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            true
        } else {
            *s = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Rate, same_token};

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"s3crett", b"s3cret"));
        assert!(!same_token(b"s3creT", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
        // A prefix padded with NULs is not the token either.
        assert!(!same_token(b"s3cret\0", b"s3cret"));
    }

    #[test]
    fn the_bucket_allows_its_burst_then_refuses() {
        let r = Rate::new(1, 5);
        let allowed = (0..20).filter(|_| r.allow()).count();
        assert_eq!(allowed, 5);
    }
}
