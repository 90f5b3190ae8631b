//! A loaded instance of one entry point with its own maps: load (map sizes
//! set at load time), run frames through it with `BPF_PROG_TEST_RUN`, read
//! its counters and flow table, and attach it to an interface by the ladder
//! native, then generic. Dropping it detaches it.

use std::{net::IpAddr, time::Duration};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData, MapError, PerCpuArray, ProgramArray},
    programs::{
        TestRun, TestRunAttrs, TestRunOptions, Xdp,
        xdp::{XdpLink, XdpLinkId, XdpMode},
    },
};
use balancer_common::{
    Counter,
    guard::{
        COOKIE_ENTRY, COOKIE_PROGS_MAP, GUARD_STATS_MAP, LIMITED_MAP, LISTS_MAP, Limited,
        SOURCES_MAP,
    },
    maps::{BACKENDS_MAP, DECAP_ADDRS_MAP, FLOWS_MAP, FlowKey, FlowValue, RING_MAP, VIPS_MAP},
    stats::GUARD_REASONS,
    stats::STATS_MAP,
};

use super::{
    Entry, OBJECT, Sizes, Verdict, XdpError,
    keys::mapped,
    pins::{PINNED, Pins},
};

/// How a program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// In the driver: the fast path.
    Native,
    /// In the kernel stack after the driver (`SKB` mode): correct, slower.
    Generic,
}

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attached::Native => "native",
            Attached::Generic => "generic",
        })
    }
}

/// One loaded entry point.
pub struct XdpProgram {
    pub(super) ebpf: Ebpf,
    pub(super) entry: Entry,
}

impl XdpProgram {
    /// Loads the balancer with maps of `sizes` (verifier included).
    pub fn load(sizes: Sizes) -> Result<Self, XdpError> {
        Self::load_object(OBJECT, sizes)
    }

    /// Loads the balancer from another build's `object` (the benchmark's
    /// A/B comparison: the same tables, written by this build, must mean
    /// the same to it).
    pub fn load_object(object: &[u8], sizes: Sizes) -> Result<Self, XdpError> {
        let ebpf = loader(sizes).load(object)?;
        Self::finish(ebpf, Entry::Balancer)
    }

    /// Loads the balancer with its maps pinned in `pins`: a map pinned
    /// there is re-adopted as it is, any other is created and pinned.
    /// [`Pins::plan`] has removed the pins that must not be re-adopted.
    pub fn load_pinned(sizes: Sizes, pins: &Pins) -> Result<Self, XdpError> {
        let mut l = loader(sizes);
        for name in PINNED {
            l.map_pin_path(name, pins.path(name));
        }
        let ebpf = l.load(OBJECT)?;
        Self::finish(ebpf, Entry::Balancer)
    }

    /// Loads the decapsulator, unwrapping tunnels addressed to `endpoints`.
    pub fn load_decap(endpoints: &[IpAddr]) -> Result<Self, XdpError> {
        // The balancer's maps come with the object; keep them minimal here.
        let ebpf = loader(Sizes::MINIMAL)
            .map_max_entries(
                DECAP_ADDRS_MAP,
                u32::try_from(endpoints.len()).unwrap_or(u32::MAX).max(1),
            )
            .load(OBJECT)?;
        let mut prog = Self::finish(ebpf, Entry::Decap)?;
        let mut addrs: HashMap<&mut MapData, [u8; 16], u32> =
            HashMap::try_from(prog.map_mut(DECAP_ADDRS_MAP)?).map_err(map_err(DECAP_ADDRS_MAP))?;
        for ip in endpoints {
            addrs
                .insert(mapped(*ip), 0, 0)
                .map_err(map_err(DECAP_ADDRS_MAP))?;
        }
        Ok(prog)
    }

    /// Loads the bare `XDP_TX` program the benchmark compares against.
    pub fn load_bare_tx() -> Result<Self, XdpError> {
        Self::load_yardstick(Entry::BareTx)
    }

    /// Loads an entry point that needs no tables (the benchmark's bare and
    /// lookup yardsticks, the flood source) with minimal maps.
    pub fn load_yardstick(entry: Entry) -> Result<Self, XdpError> {
        let ebpf = loader(Sizes::MINIMAL).load(OBJECT)?;
        Self::finish(ebpf, entry)
    }

    /// Loads the bare `XDP_DROP` program the guard benchmark compares against.
    pub fn load_bare_drop() -> Result<Self, XdpError> {
        Self::load_yardstick(Entry::BareDrop)
    }

    /// Loads the SYN-flood source (see [`Entry::SynFlood`]).
    pub fn load_syn_flood() -> Result<Self, XdpError> {
        Self::load_yardstick(Entry::SynFlood)
    }

    pub(super) fn finish(mut ebpf: Ebpf, entry: Entry) -> Result<Self, XdpError> {
        let program: &mut Xdp = ebpf
            .program_mut(entry.name())
            .ok_or(XdpError::MissingProgram(entry.name()))?
            .try_into()?;
        program.load()?;
        if matches!(entry, Entry::Balancer) {
            // The balancer tail-calls the cookie answerer from slot 0.
            let cookie: &mut Xdp = ebpf
                .program_mut(COOKIE_ENTRY)
                .ok_or(XdpError::MissingProgram(COOKIE_ENTRY))?
                .try_into()?;
            cookie.load()?;
            let fd = cookie.fd()?.try_clone().map_err(|e| XdpError::Map {
                name: COOKIE_PROGS_MAP,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
            let map = ebpf
                .map_mut(COOKIE_PROGS_MAP)
                .ok_or_else(|| missing(COOKIE_PROGS_MAP))?;
            ProgramArray::try_from(map)
                .and_then(|mut a| a.set(0, &fd, 0))
                .map_err(map_err(COOKIE_PROGS_MAP))?;
        }
        Ok(Self { ebpf, entry })
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        let name = self.entry.name();
        Ok(self
            .ebpf
            .program(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()?)
    }

    pub(super) fn map(&self, name: &'static str) -> Result<&Map, XdpError> {
        self.ebpf.map(name).ok_or_else(|| missing(name))
    }

    pub(super) fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, XdpError> {
        self.ebpf.map_mut(name).ok_or_else(|| missing(name))
    }

    /// Attaches to `interface`: native XDP if the driver has it, else
    /// generic. The caller reports which one, loudly when generic. The
    /// program stays attached while this value lives.
    pub fn attach(&mut self, interface: &str) -> Result<Attached, XdpError> {
        self.attach_id(interface).map(|(attached, _)| attached)
    }

    /// Attaches to `interface` like [`XdpProgram::attach`] and hands back
    /// the link, so the caller can pin it: the program then outlives this
    /// process.
    pub fn attach_link(&mut self, interface: &str) -> Result<(Attached, XdpLink), XdpError> {
        let (attached, id) = self.attach_id(interface)?;
        Ok((attached, self.entry_mut()?.take_link(id)?))
    }

    fn attach_id(&mut self, interface: &str) -> Result<(Attached, XdpLinkId), XdpError> {
        let program = self.entry_mut()?;
        if let Ok(id) = program.attach(interface, XdpMode::Driver) {
            return Ok((Attached::Native, id));
        }
        match program.attach(interface, XdpMode::Skb) {
            Ok(id) => Ok((Attached::Generic, id)),
            Err(source) => Err(XdpError::Attach {
                interface: interface.to_owned(),
                source,
            }),
        }
    }

    /// The entry point as an XDP program.
    pub(super) fn entry_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        let name = self.entry.name();
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()?)
    }

    /// Runs one frame through the program and returns its verdict and the
    /// frame as the program left it.
    pub fn run(&self, frame: &[u8]) -> Result<(Verdict, Vec<u8>), XdpError> {
        // Room for the tunnel header the balancer may push.
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
    pub fn time(&self, frame: &[u8], repeat: u32) -> Result<Duration, XdpError> {
        let result = self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(result.duration)
    }

    /// Runs `frame` `repeat` times in live-frames mode: as if it arrived on
    /// interface `ifindex`, with `XDP_TX` really transmitting. Returns the
    /// wall time the kernel took for all of them.
    pub fn live(&self, frame: &[u8], ifindex: u32, repeat: u32) -> Result<Duration, XdpError> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex. The kernel wants data_end equal to
        // the frame's length and the ingress index; the rest zero.
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&len.to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let start = std::time::Instant::now();
        self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..TestRunOptions::default()
        })?;
        Ok(start.elapsed())
    }

    /// The backend id a flow is pinned to in the flow table, if any.
    pub fn flow(&self, key: &FlowKey) -> Result<Option<u32>, XdpError> {
        let flows: HashMap<&MapData, FlowKey, FlowValue> =
            HashMap::try_from(self.map(FLOWS_MAP)?).map_err(map_err(FLOWS_MAP))?;
        match flows.get(key, 0) {
            Ok(v) => Ok(Some(v.backend)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(FLOWS_MAP)(e)),
        }
    }

    /// The guard's drops of listener `vip_id`, summed over CPUs, in
    /// [`Counter::GUARD`] order.
    pub fn guard_counters(&self, vip_id: u32) -> Result<[u64; GUARD_REASONS as usize], XdpError> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(GUARD_STATS_MAP)?).map_err(map_err(GUARD_STATS_MAP))?;
        let mut out = [0u64; GUARD_REASONS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = array
                .get(&(vip_id * GUARD_REASONS + i as u32), 0)
                .map_err(map_err(GUARD_STATS_MAP))?
                .iter()
                .sum();
        }
        Ok(out)
    }

    /// Sources a per-source limit dropped within `window` of now, most
    /// drops first, at most `n` of them.
    pub fn limited_sources(
        &self,
        window: Duration,
        n: usize,
    ) -> Result<Vec<LimitedSource>, XdpError> {
        let map: HashMap<&MapData, [u8; 16], Limited> =
            HashMap::try_from(self.map(LIMITED_MAP)?).map_err(map_err(LIMITED_MAP))?;
        // The clock `bpf_ktime_get_ns` reads.
        let now = crate::runtime::monotonic_ns();
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        let mut out: Vec<LimitedSource> = map
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, l)| now.saturating_sub(l.last_ns) <= window)
            .map(|(k, l)| LimitedSource {
                source: unmapped(k),
                drops: l.drops,
                ago: Duration::from_nanos(now.saturating_sub(l.last_ns)),
            })
            .collect();
        out.sort_by_key(|l| std::cmp::Reverse(l.drops));
        out.truncate(n);
        Ok(out)
    }

    /// Records `key` as pinned to `backend` with VIP field `vip`, as a
    /// program might have left it.
    #[cfg(test)]
    pub(super) fn put_flow(
        &mut self,
        key: &FlowKey,
        backend: u32,
        vip: u32,
    ) -> Result<(), XdpError> {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(self.map_mut(FLOWS_MAP)?).map_err(map_err(FLOWS_MAP))?;
        flows
            .insert(
                key,
                FlowValue {
                    backend,
                    vip,
                    seen: crate::runtime::monotonic_ns(),
                },
                0,
            )
            .map_err(map_err(FLOWS_MAP))
    }

    /// Makes the recorded flow `key` look idle for `by` longer than it has
    /// been, as time passing would.
    #[cfg(test)]
    pub(super) fn age_flow(&mut self, key: &FlowKey, by: Duration) -> Result<(), XdpError> {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(self.map_mut(FLOWS_MAP)?).map_err(map_err(FLOWS_MAP))?;
        let mut value = flows.get(key, 0).map_err(map_err(FLOWS_MAP))?;
        value.seen = value
            .seen
            .saturating_sub(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        flows.insert(key, value, 0).map_err(map_err(FLOWS_MAP))
    }

    /// Every counter, summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], XdpError> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(STATS_MAP)?).map_err(map_err(STATS_MAP))?;
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            out[c as usize] = array
                .get(&(c as u32), 0)
                .map_err(map_err(STATS_MAP))?
                .iter()
                .sum();
        }
        Ok(out)
    }
}

/// A source the per-source limits have been dropping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitedSource {
    /// The source (an IPv6 source stands for its /64).
    pub source: IpAddr,
    /// Packets dropped since it was first limited (approximate).
    pub drops: u64,
    /// Time since its last drop.
    pub ago: Duration,
}

/// The address a 16-byte, IPv4-mapped key stands for.
#[must_use]
pub fn unmapped(key: [u8; 16]) -> IpAddr {
    std::net::Ipv6Addr::from(key).to_canonical()
}

/// A loader with the balancer's map sizes set (every entry point's object
/// carries those maps).
pub(super) fn loader(sizes: Sizes) -> EbpfLoader<'static> {
    let mut l = EbpfLoader::new();
    l.map_max_entries(VIPS_MAP, sizes.vips)
        .map_max_entries(RING_MAP, sizes.ring)
        .map_max_entries(BACKENDS_MAP, sizes.backends)
        .map_max_entries(FLOWS_MAP, sizes.flows)
        .map_max_entries(LISTS_MAP, sizes.lists)
        .map_max_entries(SOURCES_MAP, sizes.sources);
    l
}

pub(super) fn map_err(name: &'static str) -> impl Fn(MapError) -> XdpError {
    move |source| XdpError::Map { name, source }
}

/// The error for a map the object lacks.
pub(super) fn missing(name: &'static str) -> XdpError {
    XdpError::Map {
        name,
        source: MapError::InvalidName {
            name: name.to_owned(),
        },
    }
}
