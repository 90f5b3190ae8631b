//! Process limits the daemon adjusts at start, and kernel settings it checks.
#![expect(
    unsafe_code,
    reason = "getrlimit and setrlimit through libc, each with a SAFETY note"
)]

use std::io;

use tracing::warn;

/// Each proxied connection costs two descriptors; lift the soft limit to the
/// hard one so the limit the operator granted is the one we get.
pub fn raise_fd_limit() {
    match rlimit_nofile() {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = set_rlimit_nofile(hard) {
                warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open-files limit"),
    }
}

/// Where the kernel's SYN-cookie switch lives (per network namespace).
const SYNCOOKIES: &str = "/proc/sys/net/ipv4/tcp_syncookies";

/// TCP listeners served in userspace rely on the kernel's SYN cookies when
/// a flood fills their accept queue: without them new connections are
/// refused until the flood stops. Says so loudly when they are off; `1`
/// (cookies when the queue overflows) is the right setting, `2` (always)
/// costs TCP options such as window scaling on every connection.
pub fn check_syncookies(config: &crate::config::Config) {
    let proxied_tcp = config.listeners.iter().any(|l| {
        l.protocol == crate::config::model::Protocol::Tcp
            && l.mode != crate::config::model::Mode::Xdp
    });
    if !proxied_tcp {
        return;
    }
    match std::fs::read_to_string(SYNCOOKIES) {
        Ok(v) if v.trim() == "0" => warn!(
            "kernel SYN cookies are off ({SYNCOOKIES} = 0): a SYN flood on a proxy or http listener fills its accept queue and real clients are refused; run `sysctl -w net.ipv4.tcp_syncookies=1`"
        ),
        Ok(v) => tracing::info!(
            value = v.trim(),
            "kernel SYN cookies are on for proxied TCP listeners"
        ),
        Err(e) => {
            warn!(error = %e, "cannot read {SYNCOOKIES}; SYN-flood protection of proxied listeners unknown");
        }
    }
}

fn rlimit_nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set_rlimit_nofile(value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `lim` is a valid rlimit; raising the soft limit to the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How often the open-connection count is looked at for a trim.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// Connections that must have closed since the peak before memory is
/// handed back.
const TRIM_AFTER: usize = 256;

/// Hands memory the allocator keeps after a burst of connections closes
/// back to the system. glibc keeps freed buffers in its per-thread arenas,
/// so after thousands of connections (a slowloris wave, a reconnect storm)
/// the daemon's resident memory would stay at the peak; `malloc_trim`
/// releases the free pages. Runs until the task is dropped.
pub async fn trim_after_bursts(tracker: crate::runtime::Tracker) {
    let mut peak = tracker.count();
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        let now = tracker.count();
        if now + TRIM_AFTER <= peak {
            // SAFETY: malloc_trim only releases free memory of the
            // allocator's own arenas; it touches nothing in use.
            unsafe {
                libc::malloc_trim(0);
            }
            peak = now;
        } else {
            peak = peak.max(now);
        }
    }
}
