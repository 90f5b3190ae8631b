//! Process limits the daemon adjusts at start.
#![allow(unsafe_code)]

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
