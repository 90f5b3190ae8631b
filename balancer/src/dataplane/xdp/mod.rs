//! The XDP program as userspace sees it: the object embedded in this binary,
//! loading it, running packets through it with `BPF_PROG_TEST_RUN`, and
//! reading its per-CPU counters. Attaching to interfaces comes with the XDP
//! listener mode.
#![allow(unsafe_code)]

pub mod packet;
#[cfg(test)]
mod tests;

use aya::{
    Ebpf, EbpfError,
    maps::{MapError, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp},
};
use balancer_common::{Counter, stats::STATS_MAP};

/// The compiled XDP object, built by `build.rs` from `balancer-ebpf`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/balancer"));

/// Name of the XDP entry point in [`OBJECT`].
pub const PROGRAM: &str = "balancer";

/// XDP verdicts, as the kernel numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Verdict {
    /// `XDP_ABORTED`: a program error. Ours must never return it.
    Aborted = 0,
    /// `XDP_DROP`.
    Drop = 1,
    /// `XDP_PASS`.
    Pass = 2,
    /// `XDP_TX`.
    Tx = 3,
    /// `XDP_REDIRECT`.
    Redirect = 4,
}

impl Verdict {
    fn from_raw(v: u32) -> Result<Self, XdpError> {
        Ok(match v {
            0 => Verdict::Aborted,
            1 => Verdict::Drop,
            2 => Verdict::Pass,
            3 => Verdict::Tx,
            4 => Verdict::Redirect,
            other => return Err(XdpError::BadVerdict(other)),
        })
    }
}

/// Why loading or running the XDP program failed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The object could not be parsed or its maps created.
    #[error(
        "cannot load the embedded XDP object: {0} (loading BPF needs root or CAP_BPF + CAP_NET_ADMIN)"
    )]
    Object(#[from] EbpfError),
    /// The verifier or the kernel refused the program.
    #[error("the kernel refused XDP program `{PROGRAM}`: {0}")]
    Program(#[from] ProgramError),
    /// A map the program should have is missing or has the wrong type.
    #[error("XDP map `{name}`: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Underlying error.
        #[source]
        source: MapError,
    },
    /// The object lacks the entry point (a build mix-up).
    #[error("the embedded XDP object has no program `{PROGRAM}`; rebuild with `cargo xtask build`")]
    MissingProgram,
    /// The program returned a value that is no XDP verdict.
    #[error("XDP program returned `{0}`, which is not a verdict")]
    BadVerdict(u32),
}

/// A loaded, unattached instance of the program with its own maps.
pub struct XdpProgram {
    ebpf: Ebpf,
}

impl XdpProgram {
    /// Loads the embedded object into the kernel (verifier included).
    pub fn load() -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(XdpError::MissingProgram)?
            .try_into()?;
        program.load()?;
        Ok(Self { ebpf })
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or(XdpError::MissingProgram)?
            .try_into()?)
    }

    /// Runs one frame through the program and returns its verdict and the
    /// frame as the program left it.
    pub fn run(&self, frame: &[u8]) -> Result<(Verdict, Vec<u8>), XdpError> {
        // Room for encapsulation headers a later stage may push.
        let mut out = vec![0u8; frame.len() + 256];
        let result = self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..TestRunOptions::default()
        })?;
        out.truncate(result.data_size_out as usize);
        Ok((Verdict::from_raw(result.return_value)?, out))
    }

    /// Runs `frame` `repeat` times in the kernel; returns the mean time per run.
    pub fn time(&self, frame: &[u8], repeat: u32) -> Result<std::time::Duration, XdpError> {
        let result = self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(result.duration)
    }

    /// Every counter, summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], XdpError> {
        let map_err = |source| XdpError::Map {
            name: STATS_MAP,
            source,
        };
        let map = self.ebpf.map(STATS_MAP).ok_or(XdpError::Map {
            name: STATS_MAP,
            source: MapError::InvalidName {
                name: STATS_MAP.to_owned(),
            },
        })?;
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err)?;
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            out[c as usize] = array.get(&(c as u32), 0).map_err(map_err)?.iter().sum();
        }
        Ok(out)
    }
}
