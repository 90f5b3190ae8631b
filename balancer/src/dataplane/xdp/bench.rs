//! The benchmark harnesses as the daemon's loader sees them: the program
//! under test loaded with one of the harness programs in front, which
//! prepares each repeated run and tail-calls it (see
//! `balancer_common::bench`). Used by the benchmark examples only.

use aya::{
    maps::{Array, MapError, ProgramArray},
    programs::Xdp,
};
use balancer_common::bench::{
    BENCH_FRAME_MAP, BENCH_FRAME_MAX, BENCH_TARGET_MAP, BENCH_WALK_MAP, BenchFrame, BenchWalk,
};

use super::{
    Entry, OBJECT, Sizes, XdpError, XdpProgram,
    program::{loader, map_err},
};

impl XdpProgram {
    /// Loads `target` (with maps of `sizes`) behind the restoring harness:
    /// each run first restores `frame`, so repeated runs of a program that
    /// grows the frame (IP-in-IP) measure the same packet. Runs and timings
    /// go through the harness; maps are the target's.
    pub fn load_restoring(sizes: Sizes, target: Entry, frame: &[u8]) -> Result<Self, XdpError> {
        let mut prog = Self::behind(sizes, target, Entry::Restore)?;
        let mut stored = BenchFrame {
            len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            bytes: [0; BENCH_FRAME_MAX],
        };
        let Some(into) = stored.bytes.get_mut(..frame.len()) else {
            return Err(XdpError::Map {
                name: BENCH_FRAME_MAP,
                source: MapError::OutOfBounds {
                    index: stored.len,
                    max_entries: u32::try_from(BENCH_FRAME_MAX).unwrap_or(u32::MAX),
                },
            });
        };
        into.copy_from_slice(frame);
        Array::try_from(prog.map_mut(BENCH_FRAME_MAP)?)
            .and_then(|mut a| a.set(0, stored, 0))
            .map_err(map_err(BENCH_FRAME_MAP))?;
        Ok(prog)
    }

    /// Loads `target` behind the walking harness: each run gives the frame
    /// (IPv4, no options) the source of the next of `flows` flows, so
    /// repeated runs spread over that many flows.
    pub fn load_walking(sizes: Sizes, target: Entry, flows: u32) -> Result<Self, XdpError> {
        let mut prog = Self::behind(sizes, target, Entry::Walk)?;
        let state = BenchWalk {
            flows: flows.max(1),
            next: 0,
        };
        Array::try_from(prog.map_mut(BENCH_WALK_MAP)?)
            .and_then(|mut a| a.set(0, state, 0))
            .map_err(map_err(BENCH_WALK_MAP))?;
        Ok(prog)
    }

    /// `target` loaded, then `harness` loaded with `target` in its tail-call
    /// slot; runs go through the harness.
    fn behind(sizes: Sizes, target: Entry, harness: Entry) -> Result<Self, XdpError> {
        let ebpf = loader(sizes).load(OBJECT)?;
        let mut prog = Self::finish(ebpf, target)?;
        let fd = prog
            .entry_mut()?
            .fd()?
            .try_clone()
            .map_err(|e| XdpError::Map {
                name: BENCH_TARGET_MAP,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
        let program: &mut Xdp = prog
            .ebpf
            .program_mut(harness.name())
            .ok_or(XdpError::MissingProgram(harness.name()))?
            .try_into()?;
        program.load()?;
        ProgramArray::try_from(prog.map_mut(BENCH_TARGET_MAP)?)
            .and_then(|mut a| a.set(0, &fd, 0))
            .map_err(map_err(BENCH_TARGET_MAP))?;
        prog.entry = harness;
        Ok(prog)
    }
}
