//! The XDP program as userspace sees it: the object embedded in this binary,
//! loading it, running packets through it with `BPF_PROG_TEST_RUN`, and
//! reading its per-CPU counters. Attaching to interfaces comes with the XDP
//! listener mode.
#![allow(unsafe_code)]

#[cfg(test)]
mod balance_tests;
pub mod packet;
pub mod tables;
#[cfg(test)]
mod tests;

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp},
};
use balancer_common::{
    Counter,
    maps::{
        BACKENDS_MAP, BackendEntry, FLOWS_MAP, FlowKey, FlowValue, RING_MAP, SETTINGS_MAP,
        Settings, VIPS_MAP, VipKey, VipMeta,
    },
    stats::STATS_MAP,
};

use self::tables::Tables;

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

/// Map sizes, chosen at load time from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// VIP entries.
    pub vips: u32,
    /// Ring slots, all VIPs together.
    pub ring: u32,
    /// Backend entries.
    pub backends: u32,
    /// Flow-table entries.
    pub flows: u32,
}

impl Sizes {
    /// Room for `tables` twice over plus a little, so later changes with up
    /// to that many VIPs, ring slots and new backend ids fit without
    /// reloading; and `flows` flow-table entries.
    #[must_use]
    pub fn for_tables(tables: &Tables, flows: u32) -> Self {
        let room = |n: usize| {
            u32::try_from(n)
                .unwrap_or(u32::MAX / 4)
                .saturating_mul(2)
                .saturating_add(16)
        };
        let max_id = tables
            .backends
            .iter()
            .map(|(id, _)| *id as usize + 1)
            .max()
            .unwrap_or(0);
        Self {
            vips: room(tables.vips.len()),
            ring: room(tables.ring.len()),
            backends: room(max_id),
            flows: flows.max(1),
        }
    }
}

/// A loaded, unattached instance of the program with its own maps.
pub struct XdpProgram {
    ebpf: Ebpf,
}

impl XdpProgram {
    /// Loads the embedded object into the kernel (verifier included) with
    /// maps of `sizes`.
    pub fn load(sizes: Sizes) -> Result<Self, XdpError> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(VIPS_MAP, sizes.vips)
            .map_max_entries(RING_MAP, sizes.ring)
            .map_max_entries(BACKENDS_MAP, sizes.backends)
            .map_max_entries(FLOWS_MAP, sizes.flows)
            .load(OBJECT)?;
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

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, XdpError> {
        self.ebpf.map_mut(name).ok_or(XdpError::Map {
            name,
            source: MapError::InvalidName {
                name: name.to_owned(),
            },
        })
    }

    /// Moves the maps from `old` (what was written before, `None` when they
    /// are empty) to `new`, writing only what changed. Order matters to
    /// packets in flight: new backends first, then rings, then VIPs; removed
    /// VIPs and backends last, so no VIP ever points at a missing backend. A
    /// removed backend's slot is cleared, and flows pinned to it are placed
    /// again by the ring on their next packet.
    pub fn apply(&mut self, old: Option<&Tables>, new: &Tables) -> Result<(), XdpError> {
        let err = |name| move |source| XdpError::Map { name, source };
        let none = Tables {
            vips: Vec::new(),
            ring: Vec::new(),
            backends: Vec::new(),
            settings: new.settings,
        };
        let old = old.unwrap_or(&none);
        let mut settings: Array<&mut MapData, Settings> =
            Array::try_from(self.map_mut(SETTINGS_MAP)?).map_err(err(SETTINGS_MAP))?;
        settings
            .set(0, new.settings, 0)
            .map_err(err(SETTINGS_MAP))?;
        let mut backends: Array<&mut MapData, BackendEntry> =
            Array::try_from(self.map_mut(BACKENDS_MAP)?).map_err(err(BACKENDS_MAP))?;
        for b in new.backends.iter().filter(|b| !old.backends.contains(b)) {
            backends.set(b.0, b.1, 0).map_err(err(BACKENDS_MAP))?;
        }
        let mut ring: Array<&mut MapData, u32> =
            Array::try_from(self.map_mut(RING_MAP)?).map_err(err(RING_MAP))?;
        for (i, id) in new.ring.iter().enumerate() {
            if old.ring.get(i) != Some(id) {
                ring.set(i as u32, id, 0).map_err(err(RING_MAP))?;
            }
        }
        let mut vips: HashMap<&mut MapData, VipKey, VipMeta> =
            HashMap::try_from(self.map_mut(VIPS_MAP)?).map_err(err(VIPS_MAP))?;
        for v in new.vips.iter().filter(|v| !old.vips.contains(v)) {
            vips.insert(v.0, v.1, 0).map_err(err(VIPS_MAP))?;
        }
        for (k, _) in old
            .vips
            .iter()
            .filter(|(k, _)| !new.vips.iter().any(|(n, _)| n == k))
        {
            vips.remove(k).map_err(err(VIPS_MAP))?;
        }
        let mut backends: Array<&mut MapData, BackendEntry> =
            Array::try_from(self.map_mut(BACKENDS_MAP)?).map_err(err(BACKENDS_MAP))?;
        let cleared = BackendEntry {
            addr: [0; 16],
            mac: [0; 6],
            family: 0,
            flags: 0,
        };
        for (id, _) in old
            .backends
            .iter()
            .filter(|(id, _)| !new.backends.iter().any(|(n, _)| n == id))
        {
            backends.set(*id, cleared, 0).map_err(err(BACKENDS_MAP))?;
        }
        Ok(())
    }

    /// The backend id a flow is pinned to in the flow table, if any.
    pub fn flow(&self, key: &FlowKey) -> Result<Option<u32>, XdpError> {
        let err = |source| XdpError::Map {
            name: FLOWS_MAP,
            source,
        };
        let map = self.ebpf.map(FLOWS_MAP).ok_or(XdpError::Map {
            name: FLOWS_MAP,
            source: MapError::InvalidName {
                name: FLOWS_MAP.to_owned(),
            },
        })?;
        let flows: HashMap<&MapData, FlowKey, FlowValue> = HashMap::try_from(map).map_err(err)?;
        match flows.get(key, 0) {
            Ok(v) => Ok(Some(v.backend)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(err(e)),
        }
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
