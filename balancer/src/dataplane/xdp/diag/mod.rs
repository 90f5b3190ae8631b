//! Diagnostics from the kernel: the XDP programs report rare events through
//! aya-log (see `balancer-ebpf/src/diag.rs`) into a ring buffer; the
//! reader drains it on a thread of its own as records arrive, and the [`bridge`] turns each
//! into a tracing event of the daemon. What the programs report is gated
//! in the kernel by a level the daemon writes into their level map: off by
//! default, set by `xdp.log` and at runtime through the admin API.

pub mod bridge;
mod reader;

use std::sync::Arc;

use aya::maps::{Array, MapData};
use aya_log::EbpfLogger;
use balancer_common::diag::LOG_LEVEL_MAP;

use self::bridge::{Bridge, Counts};
use super::{
    XdpError, XdpProgram,
    program::{map_err, missing},
};
use crate::config::model::KernelLog;

/// A running program's diagnostics, or why it has none. They are off by
/// default and never stop the fast path: a program whose ring cannot be
/// read serves on without them (said once, loudly).
pub struct Reports {
    inner: Result<Diagnostics, String>,
    counts: Arc<Counts>,
}

impl Reports {
    /// Starts reading `program`'s reports (named `name` in each line) at
    /// `level` into the daemon's log, counting into `counts`.
    pub fn start(
        program: &mut XdpProgram,
        name: &'static str,
        counts: Arc<Counts>,
        level: KernelLog,
    ) -> Self {
        let bridge = Bridge::to_tracing(name, counts.clone());
        let inner = Diagnostics::take(program, bridge, level, Reading::Thread).map_err(|e| {
            tracing::warn!(error = %e, "the XDP program's diagnostics are unavailable; it serves on without them");
            e.to_string()
        });
        if inner.is_ok() && level != KernelLog::Off {
            tracing::info!(%level, program = name, "the XDP program reports rare events into this log");
        }
        Self { inner, counts }
    }

    /// The level the program reports at (off without diagnostics).
    #[must_use]
    pub fn level(&self) -> KernelLog {
        self.inner
            .as_ref()
            .map_or(KernelLog::Off, Diagnostics::level)
    }

    /// Makes the program report at `level`.
    pub fn set(&mut self, level: KernelLog) -> Result<(), XdpError> {
        match &mut self.inner {
            Ok(d) => d.set(level),
            Err(why) => Err(XdpError::Log(why.clone())),
        }
    }

    /// Lines written and suppressed so far.
    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The counts, to share with the next program's reports.
    #[must_use]
    pub fn counts_handle(&self) -> Arc<Counts> {
        self.counts.clone()
    }
}

/// How the ring is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// By a thread of its own, as records arrive.
    Thread,
    /// Only when [`Diagnostics::drain`] is called (tests).
    OnDemand,
}

/// One loaded program's diagnostics: its level and the reading of its ring.
pub struct Diagnostics {
    levels: Array<MapData, u32>,
    level: KernelLog,
    /// Held for its drop, which stops the thread.
    _reader: Option<reader::Reader>,
    on_demand: Option<EbpfLogger<Bridge>>,
    counts: Arc<Counts>,
}

impl Diagnostics {
    /// Takes the ring and the level map out of `program`, writes `level`
    /// and starts reading through `bridge`.
    pub fn take(
        program: &mut XdpProgram,
        bridge: Bridge,
        level: KernelLog,
        reading: Reading,
    ) -> Result<Self, XdpError> {
        let counts = bridge.counts.clone();
        let map = program
            .ebpf
            .take_map(LOG_LEVEL_MAP)
            .ok_or_else(|| missing(LOG_LEVEL_MAP))?;
        let levels = Array::try_from(map).map_err(map_err(LOG_LEVEL_MAP))?;
        let logger = EbpfLogger::init_with_logger(&mut program.ebpf, bridge.clone())
            .map_err(|e| XdpError::Log(e.to_string()))?;
        let (reader, on_demand) = match reading {
            Reading::Thread => {
                let thread =
                    reader::spawn(logger, bridge).map_err(|e| XdpError::Log(e.to_string()))?;
                (Some(thread), None)
            }
            Reading::OnDemand => (None, Some(logger)),
        };
        let mut diag = Self {
            levels,
            level: KernelLog::Off,
            _reader: reader,
            on_demand,
            counts,
        };
        diag.set(level)?;
        Ok(diag)
    }

    /// Makes the programs report at `level` from their next packet on.
    pub fn set(&mut self, level: KernelLog) -> Result<(), XdpError> {
        self.levels
            .set(0, level.gate(), 0)
            .map_err(map_err(LOG_LEVEL_MAP))?;
        self.level = level;
        Ok(())
    }

    /// The level the programs report at.
    #[must_use]
    pub fn level(&self) -> KernelLog {
        self.level
    }

    /// Lines written and suppressed so far.
    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Hands every record waiting in the ring to the bridge now (for
    /// [`Reading::OnDemand`]; the task does this by itself).
    pub fn drain(&mut self) {
        if let Some(logger) = &mut self.on_demand {
            logger.flush();
        }
    }
}

impl Drop for Diagnostics {
    fn drop(&mut self) {
        // A program the daemon leaves attached (a stop, a crash is another
        // matter) would go on writing reports nobody reads.
        let _ = self.levels.set(0, KernelLog::Off.gate(), 0);
    }
}
