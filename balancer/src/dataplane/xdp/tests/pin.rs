//! Restarts over pinned maps: each test mounts a BPF filesystem of its own
//! on a temporary directory, starts the balancer over it, runs crafted
//! frames through, drops the program (as a stopping daemon does) and starts
//! again with another config.
#![expect(unsafe_code, reason = "umount2(2) has no std wrapper")]

use std::{
    ffi::CString,
    net::{IpAddr, Ipv4Addr},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{HashMap, Map, MapData};
use balancer_common::{
    Counter,
    maps::{
        FLOWS_MAP, FlowKey, FlowValue,
        previous::{FLOWS_V1_MAP, FlowValueV1},
    },
};

use crate::config::{self, Config};
use crate::dataplane::xdp::{
    Verdict,
    adopt::{self, Adopted, Inputs},
    migrate,
    packet::{ACK, Frame},
    pins::{PinError, Pins, mount_bpf_fs},
    testkit::*,
};

/// A BPF filesystem mounted for one test, unmounted when dropped.
struct BpfFs {
    dir: tempfile::TempDir,
}

impl BpfFs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        mount_bpf_fs(dir.path()).expect("mount bpffs");
        Self { dir }
    }

    fn pins(&self) -> PathBuf {
        self.dir.path().join("balancer")
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid C string. Detaching lets the directory be removed
        // even if a map fd is still open somewhere.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn start(dir: &Path, yaml: &str, flows: u32) -> (Adopted, Config) {
    let config = config::parse(yaml, "t.yaml").expect("config");
    let pins = Pins::open(dir, None).expect("pins");
    let adopted = adopt::start(
        &pins,
        &Inputs {
            all: &config.listeners,
            served: &(0..config.listeners.len()).collect::<Vec<_>>(),
            guard: &config.guard,
            pools: &config.pools,
            egress: &egress(&config),
            hop_of: &hop_of,
            cookies: None,
        },
        flows,
    )
    .expect("start");
    (adopted, config)
}

/// Handshake ACKs: a flow is recorded on its first non-SYN packet.
fn handshakes(ports: std::ops::Range<u16>) -> Vec<Frame> {
    ports
        .map(|p| Frame::tcp4(CLIENT4, p, VIP4, 80, ACK))
        .collect()
}

/// The backend MAC each frame is forwarded to.
fn placed(a: &Adopted, frames: &[Frame]) -> Vec<[u8; 6]> {
    frames
        .iter()
        .map(|f| {
            let (verdict, out) = a.program.run(&f.bytes()).expect("run");
            assert_eq!(verdict, Verdict::Tx);
            out[..6].try_into().expect("mac")
        })
        .collect()
}

fn acks(frames: &[Frame]) -> Vec<Frame> {
    frames
        .iter()
        .map(|f| Frame::tcp4(CLIENT4, flow_of(f).src_port, VIP4, 80, ACK))
        .collect()
}

/// Asserts that `second`, started with `config` over the pins a run that
/// placed `frames` on `before` left, re-adopted all of them and keeps each
/// on its backend, although its ring would move many.
fn assert_all_kept(second: &Adopted, config: &Config, frames: &[Frame], before: &[[u8; 6]]) {
    assert!(
        second.resumed && second.replaced.is_empty(),
        "{:?}",
        second.replaced
    );
    assert_eq!(second.kept_flows, frames.len());
    let moved_by_ring = frames
        .iter()
        .zip(before)
        .filter(|(f, mac)| mac_of(proxy_pick(config, 0, &flow_of(f))) != **mac)
        .count();
    assert!(
        moved_by_ring > 50,
        "the new ring must disagree for many flows, else this test proves nothing ({moved_by_ring})"
    );
    assert_eq!(
        placed(second, &acks(frames)),
        before,
        "an established flow moved"
    );
}

/// A restart with new weights: every established flow keeps its backend
/// (the pinned flow table is consulted first), although the new ring would
/// place some elsewhere; counters carry on from where they were.
#[test]
fn restart_keeps_established_flows_where_the_new_ring_differs() {
    let fs = BpfFs::new();
    let frames = handshakes(20_000..20_300);
    let (first, _) = start(&fs.pins(), &yaml("dsr", [100, 100, 100]), 4096);
    assert!(!first.resumed, "nothing to resume on a fresh filesystem");
    let before = placed(&first, &frames);
    let forwarded = counters(&first.program)[Counter::ForwardDsr as usize];
    drop(first);

    let (second, config) = start(&fs.pins(), &yaml("dsr", [1000, 10, 10]), 4096);
    assert_all_kept(&second, &config, &frames, &before);
    let c = counters(&second.program);
    assert_eq!(c[Counter::ForwardDsr as usize], forwarded + 300);
    assert_eq!(c[Counter::FlowHit as usize], 300);
}

/// A restart without one backend: its flows are deleted and placed again
/// by the new ring; every other flow stays put.
#[test]
fn restart_moves_only_a_removed_backends_flows() {
    let fs = BpfFs::new();
    let removed = mac_of(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12)));
    let frames = handshakes(30_000..30_300);
    let (first, _) = start(&fs.pins(), &yaml("dsr", [100, 100, 100]), 4096);
    let before = placed(&first, &frames);
    let on_removed = before.iter().filter(|m| **m == removed).count();
    assert!(on_removed > 0);
    drop(first);

    let without = yaml("dsr", [100, 100, 100])
        .replace("      - { address: 198.18.1.12:80, weight: 100 }\n", "");
    let (second, config) = start(&fs.pins(), &without, 4096);
    assert_eq!(second.kept_flows, 300 - on_removed);
    let after = placed(&second, &acks(&frames));
    for ((f, old), now) in frames.iter().zip(&before).zip(&after) {
        if *old == removed {
            assert_eq!(*now, mac_of(proxy_pick(&config, 0, &flow_of(f))));
        } else {
            assert_eq!(now, old, "a flow on a surviving backend moved");
        }
    }
}

/// A new flow-table size cannot re-adopt the old table: the restart says
/// so, and flows are placed by the ring again.
#[test]
fn restart_with_another_flow_table_size_starts_empty_and_says_why() {
    let fs = BpfFs::new();
    let frames = handshakes(40_000..40_050);
    let (first, _) = start(&fs.pins(), &yaml("dsr", [100, 100, 100]), 4096);
    placed(&first, &frames);
    drop(first);
    let (second, config) = start(&fs.pins(), &yaml("dsr", [1000, 10, 10]), 8192);
    assert_eq!(second.kept_flows, 0);
    assert!(
        second
            .replaced
            .iter()
            .any(|w| w.contains("flow_table_size changed from 4096 to 8192")),
        "{:?}",
        second.replaced
    );
    let expected: Vec<[u8; 6]> = frames
        .iter()
        .map(|f| mac_of(proxy_pick(&config, 0, &flow_of(f))))
        .collect();
    assert_eq!(placed(&second, &acks(&frames)), expected);
}

/// Pins of a layout this build does not know are removed on open.
#[test]
fn pins_of_an_unknown_layout_are_removed() {
    let fs = BpfFs::new();
    let (first, _) = start(&fs.pins(), &yaml("dsr", [100, 100, 100]), 1024);
    drop(first);
    let old = fs.pins().join("FLOWS_V0");
    std::fs::rename(fs.pins().join(FLOWS_MAP), &old).expect("rename a pin");
    Pins::open(&fs.pins(), None).expect("open");
    assert!(!old.exists(), "stale pin left behind");
}

/// A second daemon on the same pins is refused while the first runs.
#[test]
fn a_pin_dir_in_use_is_refused_until_released() {
    let fs = BpfFs::new();
    let first = Pins::open(&fs.pins(), None).expect("first");
    let err = Pins::open(&fs.pins(), None).expect_err("locked");
    assert!(matches!(err, PinError::InUse(_)), "{err}");
    assert!(
        err.to_string().contains("in use by another balancer"),
        "{err}"
    );
    drop(first);
    Pins::open(&fs.pins(), None).expect("free again");
}

/// `run --upgrade` hands the lock over: the new daemon holds it through
/// the handed descriptor while the old one still runs, and a lock on
/// another directory does not count.
#[test]
fn a_handed_lock_opens_the_pin_dir_while_its_first_holder_runs() {
    let fs = BpfFs::new();
    let old = Pins::open(&fs.pins(), None).expect("old daemon");
    let new = Pins::open(&fs.pins(), Some(old.share().expect("share"))).expect("new daemon");
    drop(old);
    let err = Pins::open(&fs.pins(), None).expect_err("still held by the new one");
    assert!(matches!(err, PinError::InUse(_)), "{err}");
    let elsewhere = fs.pins().join("other");
    let other = Pins::open(&elsewhere, Some(new.share().expect("share"))).expect("other dir");
    let err = Pins::open(&elsewhere, None).expect_err("locked by `other`");
    assert!(matches!(err, PinError::InUse(_)), "{err}");
    drop(other);
}

#[test]
fn a_pin_dir_off_a_bpf_filesystem_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Pins::open(&dir.path().join("pins"), None).expect_err("not bpffs");
    assert!(matches!(err, PinError::NotBpfFs(_)), "{err}");
    assert!(err.to_string().contains("mount -t bpf"), "{err}");
}

/// Rewrites the pinned flow table in layout 1, as the build before
/// `FLOWS_V2` left it: same flows, same backends, the old value layout.
/// Returns the old table, still open, to play the old program with.
fn pin_as_v1(dir: &Path) -> HashMap<MapData, FlowKey, FlowValueV1> {
    let new_pin = dir.join(FLOWS_MAP);
    let current: HashMap<MapData, FlowKey, FlowValue> = HashMap::try_from(Map::LruHashMap(
        MapData::from_pin(&new_pin).expect("open the new table"),
    ))
    .expect("flow table");
    let flows: Vec<(FlowKey, FlowValue)> = current.iter().map(|e| e.expect("entry")).collect();
    let capacity = MapData::from_pin(&new_pin)
        .and_then(|m| m.info())
        .expect("info")
        .max_entries();
    std::fs::remove_file(&new_pin).expect("unpin the new table");
    let obj = aya_obj::Map::new_from_params(
        9, // BPF_MAP_TYPE_LRU_HASH
        size_of::<FlowKey>() as u32,
        size_of::<FlowValueV1>() as u32,
        capacity,
        0,
    );
    let data = MapData::create(obj, FLOWS_V1_MAP, None).expect("create the old table");
    data.pin(dir.join(FLOWS_V1_MAP)).expect("pin the old table");
    let mut old: HashMap<MapData, FlowKey, FlowValueV1> =
        HashMap::try_from(Map::LruHashMap(data)).expect("old table");
    for (key, value) in flows {
        let v1 = FlowValueV1 {
            backend: value.backend,
            vip: value.vip,
        };
        old.insert(key, v1, 0).expect("insert");
    }
    old
}

/// An upgrade from the build whose flow table had layout 1: the new code
/// copies the pinned table into its own layout, every established flow
/// keeps its backend although the new ring would move many, flows the
/// old program places before the new one takes over are caught up without
/// overwriting the new program's, and the old pin goes.
#[test]
fn a_flow_table_pinned_in_the_previous_layout_is_migrated_and_keeps_its_flows() {
    let fs = BpfFs::new();
    let frames = handshakes(50_000..50_300);
    let (first, _) = start(&fs.pins(), &yaml("dsr", [100, 100, 100]), 4096);
    let before = placed(&first, &frames);
    drop(first);
    let mut old = pin_as_v1(&fs.pins());
    assert!(!fs.pins().join(FLOWS_MAP).exists());

    let (mut second, config) = start(&fs.pins(), &yaml("dsr", [1000, 10, 10]), 4096);
    assert!(second.migrating, "the old table was not migrated");
    assert_all_kept(&second, &config, &frames, &before);

    // Until the new program is in the link the old one places flows in the
    // old table: one the new table lacks, and one it already has (which
    // the new program's record wins).
    let late = flow_of(&Frame::tcp4(CLIENT4, 51_000, VIP4, 80, ACK));
    let known = flow_of(&frames[0]);
    let ids = second.ids.assigned();
    let some_id = *ids.iter().next().expect("an id");
    old.insert(
        late,
        FlowValueV1 {
            backend: some_id,
            vip: 1,
        },
        0,
    )
    .expect("late flow");
    let other_id = ids
        .iter()
        .copied()
        .find(|id| Some(*id) != second.program.flow(&known).expect("read"))
        .expect("another id");
    old.insert(
        known,
        FlowValueV1 {
            backend: other_id,
            vip: 1,
        },
        0,
    )
    .expect("known flow");
    let pins = Pins::open(&fs.pins(), None).expect("pins");
    assert_eq!(
        migrate::finish(&pins, &mut second.program).expect("finish"),
        1
    );
    assert_eq!(second.program.flow(&late).expect("read"), Some(some_id));
    assert_ne!(second.program.flow(&known).expect("read"), Some(other_id));
    assert!(
        !fs.pins().join(FLOWS_V1_MAP).exists(),
        "the old pin is left"
    );
}
