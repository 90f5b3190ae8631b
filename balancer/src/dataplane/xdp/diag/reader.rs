//! Reads a program's log ring on the daemon's runtime: woken by the ring's
//! file descriptor when records arrive, each record goes to the bridge;
//! after a quiet [`SETTLE`], the bridge writes what it suppressed.

use std::time::Instant;

use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

use super::bridge::{Bridge, SETTLE};

/// Starts the reading task; it ends when aborted or if the ring fails.
pub(super) fn spawn(
    logger: EbpfLogger<Bridge>,
    bridge: Bridge,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the logger owns the ring's file descriptor, keeps it open
    // while it lives and always returns that same one; the `AsyncFd` owns
    // the logger from here on.
    #[expect(
        unsafe_code,
        reason = "tokio's safe constructor is deprecated as unsound"
    )]
    let mut ring = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                ready = ring.readable_mut() => match ready {
                    Ok(mut guard) => {
                        guard.get_inner_mut().flush();
                        guard.clear_ready();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "kernel diagnostics stopped: the log ring cannot be polled");
                        return;
                    }
                },
                () = tokio::time::sleep(SETTLE) => bridge.settle(Instant::now()),
            }
        }
    }))
}
