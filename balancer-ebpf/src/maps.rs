//! The maps the balancing stages read, declared once. Sizes here are only
//! defaults: the daemon sets the real ones from the config at load time
//! (`EbpfLoader::set_max_entries`). Names must equal the constants in
//! `balancer_common::maps`; the loader looks maps up by those constants,
//! so a mismatch fails every test that loads the program.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMap, HashMap, LpmTrie, LruHashMap, ProgramArray},
};
use balancer_common::{
    bench::{BenchFrame, BenchWalk},
    guard::{Ceiling, GuardSettings, LIMITED_ENTRIES, Limited, ListKey, MAX_VIP_IDS, SourceState},
    maps::{BackendEntry, FlowKey, FlowValue, Settings, VipKey, VipMeta},
};

/// VIPs served here: [`VipKey`] (address, port, protocol) -> [`VipMeta`]
/// (ring slice, VIP id, flags). Written by the daemon; read per packet.
#[map(name = "VIPS_V1")]
pub static VIPS: HashMap<VipKey, VipMeta> = HashMap::with_max_entries(256, 0);

/// Every VIP's Maglev ring end to end: slot -> backend id. Built and
/// written by the daemon (the ring is computed in userspace).
#[map(name = "RING_V1")]
pub static RING: Array<u32> = Array::with_max_entries(65_537, 0);

/// Backend id -> [`BackendEntry`] (address, next-hop MACs, egress port).
/// Written by the daemon; an empty slot is a backend out of service.
#[map(name = "BACKENDS_V2")]
pub static BACKENDS: Array<BackendEntry> = Array::with_max_entries(1024, 0);

/// Placed flows: [`FlowKey`] (5-tuple) -> [`FlowValue`] (backend id, VIP
/// id, when placed or last seen). Written by the program when it places a flow; the daemon reads it
/// (explain, status) and purges flows the guard lists now refuse.
// Shared across CPUs rather than per-CPU: veth and multi-queue NICs may
// deliver one flow's packets on different CPUs, and a per-CPU table would
// then place the same flow once per CPU. The LRU evicts the least recently
// used flow when full, so the table cannot be exhausted.
#[map(name = "FLOWS_V2")]
pub static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(65_536, 0);

/// The one [`Settings`] entry: forwarding mode, MTU, tunnel sources.
/// Written by the daemon.
#[map(name = "SETTINGS_V2")]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Egress interfaces besides the XDP one: [`BackendEntry`]'s `tx_port`
/// -> interface index, for `bpf_redirect_map`. Written by the daemon.
#[map(name = "TX_PORTS_V1")]
pub static TX_PORTS: DevMap = DevMap::with_max_entries(balancer_common::maps::TX_PORTS, 0);

/// The one [`GuardSettings`] entry: which checks are on, per-source
/// rates. Written by the daemon.
#[map(name = "GUARD_V1")]
pub static GUARD: Array<GuardSettings> = Array::with_max_entries(1, 0);

/// Deny, allow and martian prefixes: [`ListKey`] (scope, address) ->
/// list verdict, longest prefix first. Written by the daemon (the file's
/// entries and those added through the admin API).
#[map(name = "GUARD_LISTS_V1")]
pub static LISTS: LpmTrie<ListKey, u32> = LpmTrie::with_max_entries(1024, 0);

/// Per-source rate state: source key -> [`SourceState`] (GCRA buckets).
/// Written by the program only; the daemon sizes it.
// LRU, so a flood of spoofed sources evicts old buckets instead of failing
// to insert: the map cannot be exhausted. Shared across CPUs for the same
// reason as the flow table: one source's packets may arrive on any CPU.
#[map(name = "GUARD_SOURCES_V1")]
pub static SOURCES: LruHashMap<[u8; 16], SourceState> = LruHashMap::with_max_entries(65_536, 0);

/// Sources a per-source limit has dropped: source key -> [`Limited`].
/// Written by the program; small, so the daemon can list it for status.
#[map(name = "GUARD_LIMITED_V1")]
pub static LIMITED: LruHashMap<[u8; 16], Limited> =
    LruHashMap::with_max_entries(LIMITED_ENTRIES, 0);

/// Per-listener new-flow ceilings: VIP id -> [`Ceiling`]. The daemon
/// writes the rate, the program keeps the bucket's state in place.
#[map(name = "GUARD_CEILINGS_V1")]
pub static CEILINGS: Array<Ceiling> = Array::with_max_entries(MAX_VIP_IDS, 0);

/// Tail-call targets: slot 0 -> `balancer_cookie`
/// (`balancer_common::guard::COOKIE_PROGS_MAP`), which answers a SYN with a
/// cookie. Written by the daemon at load.
#[map(name = "COOKIE_PROGS_V1")]
pub static COOKIE_PROGS: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The benchmark harness's frame to restore (see [`crate::bench`]).
#[map(name = "BENCH_FRAME_V1")]
pub static BENCH_FRAME: Array<BenchFrame> = Array::with_max_entries(1, 0);

/// The benchmark harness's target: slot 0 -> the program under test.
#[map(name = "BENCH_TARGET_V1")]
pub static BENCH_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The lookup yardsticks' tables (see [`crate::bench::lookup`]): a 16-byte
/// and a 40-byte key, small, as only one key is ever used.
#[map(name = "BENCH_LRU16_V1")]
pub static BENCH_LRU16: LruHashMap<[u8; 16], u32> = LruHashMap::with_max_entries(64, 0);

/// See [`BENCH_LRU16`].
#[map(name = "BENCH_LRU40_V1")]
pub static BENCH_LRU40: LruHashMap<[u8; 40], u32> = LruHashMap::with_max_entries(64, 0);

/// The walking harness's state (see [`crate::bench::walk`]).
#[map(name = "BENCH_WALK_V1")]
pub static BENCH_WALK: Array<BenchWalk> = Array::with_max_entries(1, 0);
