//! Facts about processes that tests and benchmarks read or adjust: the
//! calling process's open-files limit (holding thousands of client sockets
//! needs the soft limit raised to the hard one) and a process's resident
//! memory as `/proc` reports it.
#![expect(
    unsafe_code,
    reason = "getrlimit(2) and setrlimit(2) have no std wrapper"
)]

use std::io;

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit (raising
/// the hard limit itself is left alone). Returns the new `(soft, hard)`.
/// Children spawned afterwards inherit it.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; lowering nothing and raising the
        // soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/PID/status`), or
/// `None` when the process is gone or is a kernel thread.
#[must_use]
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Descriptors `pid` has open now.
#[must_use]
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

/// Seconds since midnight (UTC) now, comparable with a log line's time of
/// day (see [`crate::Process::logged_at`]).
#[must_use]
pub fn now_of_day() -> f64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    t % 86_400.0
}

/// Milliseconds from `from` to `to`, both seconds of day.
#[must_use]
pub fn ms_between(from: f64, to: f64) -> f64 {
    ((to - from).rem_euclid(86_400.0)) * 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_rss_is_readable() {
        let kib = super::rss_kib(std::process::id()).expect("VmRSS of self");
        assert!(kib > 0);
        assert!(super::rss_kib(u32::MAX).is_none());
    }

    #[test]
    fn nofile_soft_limit_reaches_hard() {
        let (soft, hard) = super::raise_nofile_limit().expect("rlimit");
        assert_eq!(soft, hard);
    }
}
