//! Reads a program's log ring on a thread of its own: woken by the ring's
//! file descriptor when records arrive, it hands each record to the
//! bridge; after a quiet [`SETTLE`], the bridge writes what it suppressed.
//! A thread rather than a task: aya-log drains the ring until it is
//! empty, and under a flood of reports that would hold a runtime worker
//! for as long as the flood lasts.

use std::{
    os::fd::{AsFd, AsRawFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use aya_log::EbpfLogger;

use super::bridge::{Bridge, SETTLE};

/// The running reader; dropping it stops the thread within [`SETTLE`].
pub(super) struct Reader {
    stop: Arc<AtomicBool>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Not joined: the thread notices within one poll timeout, and the
        // caller (a reload, the daemon's exit) should not wait for that.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the reading thread.
pub(super) fn spawn(mut logger: EbpfLogger<Bridge>, bridge: Bridge) -> std::io::Result<Reader> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("xdp-diagnostics".to_owned())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match readable(&logger) {
                    Ok(true) => logger.flush(),
                    Ok(false) => bridge.settle(Instant::now()),
                    Err(error) => {
                        tracing::warn!(%error, "kernel diagnostics stopped: the log ring cannot be polled");
                        return;
                    }
                }
            }
        })?;
    Ok(Reader { stop })
}

/// Whether the ring has records, waiting up to [`SETTLE`] for some.
fn readable(ring: &impl AsFd) -> std::io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd: ring.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let timeout = i32::try_from(SETTLE.as_millis()).unwrap_or(i32::MAX);
    #[expect(unsafe_code, reason = "poll(2) has no std wrapper")]
    // SAFETY: one valid pollfd, its length given; the fd stays open as the
    // logger that owns it outlives the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0 && fds[0].revents & libc::POLLIN != 0)
}
