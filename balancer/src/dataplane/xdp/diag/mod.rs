//! Diagnostics from the kernel: the XDP programs report rare events through
//! aya-log (see `balancer-ebpf/src/diag.rs`) into a ring buffer; the
//! [`reader`] drains it as records arrive, and the [`bridge`] turns each
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

/// How the ring is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// By a task on the current tokio runtime, as records arrive.
    Task,
    /// Only when [`Diagnostics::drain`] is called (tests).
    OnDemand,
}

/// One loaded program's diagnostics: its level and the reading of its ring.
pub struct Diagnostics {
    levels: Array<MapData, u32>,
    level: KernelLog,
    reader: Option<tokio::task::JoinHandle<()>>,
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
            Reading::Task => {
                // Registering the ring with the reactor panics outside a
                // runtime; say so instead.
                tokio::runtime::Handle::try_current().map_err(|e| XdpError::Log(e.to_string()))?;
                let task =
                    reader::spawn(logger, bridge).map_err(|e| XdpError::Log(e.to_string()))?;
                (Some(task), None)
            }
            Reading::OnDemand => (None, Some(logger)),
        };
        let mut diag = Self {
            levels,
            level: KernelLog::Off,
            reader,
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

    /// The counts, to share with the next program's diagnostics.
    #[must_use]
    pub fn counts_handle(&self) -> Arc<Counts> {
        self.counts.clone()
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
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}
