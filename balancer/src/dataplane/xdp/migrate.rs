//! Map layout upgrades: a build whose flow table has a new layout (a new
//! `_V<n>` name) copies the flows an older build pinned into its own
//! table, so an upgrade keeps established flows on their backends as a
//! restart does. Each step this build knows reads the old layout from
//! `balancer_common::maps::previous`.
//!
//! The old program keeps placing flows in the old table until the new one
//! is swapped into the link, so the copy runs twice: once before the swap
//! (the bulk), and once after it for the flows placed in between, without
//! overwriting what the new program has recorded since. Then the old pin
//! is removed.

use std::path::PathBuf;

use aya::maps::{HashMap, Map, MapData, MapError, MapInfo, MapType};
use balancer_common::maps::{
    FLOWS_MAP, FlowKey, FlowValue,
    previous::{FLOWS_V1_MAP, FlowValueV1},
};

use super::{XdpProgram, pins::Pins, program::map_err};

/// Names of earlier layouts this build migrates from, kept when the pin
/// directory is opened.
pub const MIGRATES_FROM: [&str; 1] = [FLOWS_V1_MAP];

/// `BPF_NOEXIST`: insert only keys that are not there yet.
const NOEXIST: u64 = 1;

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The old table could not be opened or read.
    #[error("migrating the pinned flow table `{}`: {source}", path.display())]
    Old {
        /// Its pin.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: MapError,
    },
    /// The old table's pin could not be removed.
    #[error("removing the migrated flow table's pin `{}`: {source}", path.display())]
    Unpin {
        /// Its pin.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The new table could not be written.
    #[error(transparent)]
    New(#[from] super::XdpError),
}

/// The capacity of a pinned flow table of layout 1, when there is one.
#[must_use]
pub fn flows_v1(pins: &Pins) -> Option<u32> {
    let info = MapInfo::from_pin(pins.path(FLOWS_V1_MAP)).ok()?;
    let same = info.map_type().ok() == Some(MapType::LruHash)
        && info.key_size() as usize == size_of::<FlowKey>()
        && info.value_size() as usize == size_of::<FlowValueV1>();
    same.then(|| info.max_entries())
}

/// Copies the flows of the pinned layout-1 table into `program`'s table,
/// as placed now. With `catch_up`, flows the new table already has are
/// left as they are. Returns how many were copied.
pub fn copy_flows_v1(
    pins: &Pins,
    program: &mut XdpProgram,
    catch_up: bool,
) -> Result<usize, MigrateError> {
    let path = pins.path(FLOWS_V1_MAP);
    let old_err = |source| MigrateError::Old {
        path: path.clone(),
        source,
    };
    let data = MapData::from_pin(&path).map_err(old_err)?;
    let old: HashMap<MapData, FlowKey, FlowValueV1> =
        HashMap::try_from(Map::LruHashMap(data)).map_err(old_err)?;
    let mut new: HashMap<&mut MapData, FlowKey, FlowValue> =
        HashMap::try_from(program.map_mut(FLOWS_MAP)?).map_err(map_err(FLOWS_MAP))?;
    let now = crate::runtime::monotonic_ns();
    let flags = if catch_up { NOEXIST } else { 0 };
    let mut copied = 0;
    // An entry evicted while the table is walked ends the walk early or
    // is skipped; either way the flow is placed again by the ring.
    for entry in &old {
        let Ok((key, value)) = entry else { break };
        match new.insert(key, value.migrate(now), flags) {
            Ok(()) => copied += 1,
            Err(MapError::SyscallError(e))
                if catch_up && e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(map_err(FLOWS_MAP)(e).into()),
        }
    }
    Ok(copied)
}

/// Finishes a migration once the new program runs: copies the flows the
/// old one placed meanwhile and removes the old table's pin. Returns how
/// many flows the catch-up copied.
pub fn finish(pins: &Pins, program: &mut XdpProgram) -> Result<usize, MigrateError> {
    let copied = copy_flows_v1(pins, program, true)?;
    let path = pins.path(FLOWS_V1_MAP);
    std::fs::remove_file(&path).map_err(|source| MigrateError::Unpin {
        path: path.clone(),
        source,
    })?;
    Ok(copied)
}
