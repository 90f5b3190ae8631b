//! Diagnostics: rare events reported through aya-log, behind a level the
//! daemon sets at runtime (`balancer_common::diag`). Every report sits on a
//! path that is already the exception (a failed write, a state the daemon
//! never leaves behind), so with the level off the cost is one array read
//! on those paths and nothing on the others. Addresses go out in their
//! 16-byte form (IPv4-mapped for IPv4); the daemon's bridge unmaps them,
//! as converting here costs stack the balancer has little of.

use aya_ebpf::{macros::map, maps::Array};

/// The current level, one entry (`balancer_common::diag::LOG_LEVEL_MAP`).
/// Written by the daemon; 0 (off) until it writes.
#[map(name = "LOG_LEVEL_V1")]
static LOG_LEVEL: Array<u32> = Array::with_max_entries(1, 0);

/// Whether records of `level` are wanted now.
#[inline(always)]
pub fn enabled(level: u32) -> bool {
    LOG_LEVEL.get(0).is_some_and(|l| *l >= level)
}

/// A state the daemon should never leave behind.
macro_rules! report_error {
    ($ctx:expr, $($arg:tt)+) => {
        if $crate::diag::enabled(balancer_common::diag::LOG_ERROR) {
            aya_log_ebpf::error!($ctx, $($arg)+);
        }
    };
}

/// A map write that failed, or a packet that could not be forwarded.
macro_rules! report_warn {
    ($ctx:expr, $($arg:tt)+) => {
        if $crate::diag::enabled(balancer_common::diag::LOG_WARN) {
            aya_log_ebpf::warn!($ctx, $($arg)+);
        }
    };
}

/// An expected but uncommon event.
macro_rules! report_debug {
    ($ctx:expr, $($arg:tt)+) => {
        if $crate::diag::enabled(balancer_common::diag::LOG_DEBUG) {
            aya_log_ebpf::debug!($ctx, $($arg)+);
        }
    };
}

pub(crate) use {report_debug, report_error, report_warn};
