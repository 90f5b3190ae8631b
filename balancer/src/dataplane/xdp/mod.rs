//! The XDP programs as userspace sees them: the object embedded in this
//! binary ([`OBJECT`]), its two entry points ([`Entry`]), loading and
//! attaching them ([`program`]), writing the balancer's maps ([`writer`],
//! from [`tables`]), the interface facts they need ([`iface`]), and what
//! the programs report ([`diag`]).

pub mod adopt;
#[cfg(any(test, feature = "testkit"))]
mod bench;
pub mod cookies;
pub mod diag;
pub mod follow;
pub mod guard;
pub mod iface;
pub mod keys;
pub mod link;
pub mod migrate;
pub mod neighbor;
pub mod netlink;
pub mod packet;
pub mod pins;
pub mod plane;
pub mod program;
pub mod routes;
pub mod tables;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
#[cfg(test)]
mod tests;
mod writer;

use aya::{EbpfError, maps::MapError, programs::ProgramError};

pub use self::program::{Attached, XdpProgram};
use self::tables::Tables;

/// The compiled XDP object, built by `build.rs` from `balancer-ebpf`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/balancer"));

/// The entry points in [`OBJECT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The balancer (parse, balance, forward).
    Balancer,
    /// The backend-side IP-in-IP decapsulator.
    Decap,
    /// `XDP_TX` and nothing else: the benchmark's yardstick.
    BareTx,
    /// `XDP_DROP` and nothing else: the guard benchmark's yardstick.
    BareDrop,
    /// One hash-table hit with a 16-byte key, then `XDP_TX`: the floor of
    /// a stateful program, for the benchmark.
    Lookup16Tx,
    /// As [`Entry::Lookup16Tx`] with a 40-byte key.
    Lookup40Tx,
    /// A SYN flood from random benchmarking-range sources, for tests and
    /// the guard benchmark (live frames only, never attached).
    SynFlood,
    /// The benchmark harness: restores a frame, then tail-calls the
    /// program under test (see `balancer_common::bench`).
    Restore,
    /// The walking harness: gives the frame the next flow's source, then
    /// tail-calls the program under test.
    Walk,
}

impl Entry {
    /// The program's name in the object.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Entry::Balancer => "balancer",
            Entry::Decap => "balancer_decap",
            Entry::BareTx => "bench_bare_tx",
            Entry::SynFlood => "test_syn_flood",
            Entry::BareDrop => "bench_bare_drop",
            Entry::Lookup16Tx => "bench_lookup16_tx",
            Entry::Lookup40Tx => "bench_lookup40_tx",
            Entry::Restore => balancer_common::bench::BENCH_RESTORE_ENTRY,
            Entry::Walk => balancer_common::bench::BENCH_WALK_ENTRY,
        }
    }
}

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
    pub(crate) fn from_raw(v: u32) -> Result<Self, XdpError> {
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
    #[error("the kernel refused the XDP program: {0}")]
    Program(#[from] ProgramError),
    /// Neither native nor generic XDP could be attached.
    #[error("cannot attach XDP to `{interface}` (tried native, then generic): {source}")]
    Attach {
        /// Interface name.
        interface: String,
        /// The generic-mode error (the last one tried).
        #[source]
        source: ProgramError,
    },
    /// A map the program should have is missing or has the wrong type.
    #[error("XDP map `{name}`: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Underlying error.
        #[source]
        source: MapError,
    },
    /// The object lacks an entry point (a build mix-up).
    #[error("the embedded XDP object has no program `{0}`; rebuild with `cargo xtask build`")]
    MissingProgram(&'static str),
    /// The device map of egress interfaces could not be written.
    #[error("cannot write the egress interfaces' device map `TX_PORTS`: {0}")]
    Ports(#[source] aya::maps::xdp::XdpMapError),
    /// The pin directory is unusable or a pinned map unreadable.
    #[error(transparent)]
    Pin(#[from] pins::PinError),
    /// The number of CPUs could not be read (per-CPU maps need it).
    #[error("cannot read the number of possible CPUs: {0}")]
    Cpus(#[source] std::io::Error),
    /// The program returned a value that is no XDP verdict.
    #[error("XDP program returned `{0}`, which is not a verdict")]
    BadVerdict(u32),
    /// The programs' log ring could not be opened or polled.
    #[error("cannot read the XDP programs' diagnostics ring `AYA_LOGS`: {0}")]
    Log(String),
}

/// Why the XDP plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The interface is missing or unreadable.
    #[error(transparent)]
    Interface(#[from] iface::IfaceError),
    /// A backend's next hop is unknown or on another interface.
    #[error(transparent)]
    Neighbor(#[from] neighbor::NeighborError),
    /// The tables could not be built.
    #[error(transparent)]
    Tables(#[from] tables::TablesError),
    /// Loading, writing or attaching failed.
    #[error(transparent)]
    Program(#[from] XdpError),
    /// The pin directory is unusable.
    #[error(transparent)]
    Pin(#[from] pins::PinError),
    /// An older build's flow table could not be migrated.
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    /// Backends are routed through more interfaces than the device map has.
    #[error("backends are routed through more than {0} interfaces besides the XDP one")]
    TooManyInterfaces(u32),
    /// A reload asks for what only a restart can do.
    #[error("{0}")]
    NeedsRestart(String),
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
    /// Guard list entries.
    pub lists: u32,
    /// Sources the per-source limits track.
    pub sources: u32,
}

impl Sizes {
    /// One entry each: for entry points that do not balance.
    pub const MINIMAL: Sizes = Sizes {
        vips: 1,
        ring: 1,
        backends: 1,
        flows: 1,
        lists: 1,
        sources: 1,
    };

    /// Room for list entries operators add at runtime, beyond the config's.
    pub const RUNTIME_LISTS: u32 = crate::runtime::guard_lists::MAX_ADDED as u32;

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
            lists: room(tables.guard.lists.len()).saturating_add(Self::RUNTIME_LISTS),
            sources: 65_536,
        }
    }

    /// These sizes with a per-source table of `n` entries.
    #[must_use]
    pub fn with_sources(self, n: u32) -> Self {
        Self {
            sources: n.max(1),
            ..self
        }
    }
}
