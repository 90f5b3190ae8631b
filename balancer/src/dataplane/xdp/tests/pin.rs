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

use balancer_common::{Counter, maps::FLOWS_MAP};

use crate::config::{self, Config};
use crate::dataplane::xdp::{
    Verdict,
    adopt::{self, Adopted, Inputs},
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
    let pins = Pins::open(dir).expect("pins");
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
    assert!(
        second.resumed && second.replaced.is_empty(),
        "{:?}",
        second.replaced
    );
    assert_eq!(second.kept_flows, 300);
    let moved_by_ring = frames
        .iter()
        .zip(&before)
        .filter(|(f, mac)| mac_of(proxy_pick(&config, 0, &flow_of(f))) != **mac)
        .count();
    assert!(
        moved_by_ring > 50,
        "the new ring must disagree for many flows, else this test proves nothing ({moved_by_ring})"
    );
    assert_eq!(
        placed(&second, &acks(&frames)),
        before,
        "an established flow moved"
    );
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
    Pins::open(&fs.pins()).expect("open");
    assert!(!old.exists(), "stale pin left behind");
}

/// A second daemon on the same pins is refused while the first runs.
#[test]
fn a_pin_dir_in_use_is_refused_until_released() {
    let fs = BpfFs::new();
    let first = Pins::open(&fs.pins()).expect("first");
    let err = Pins::open(&fs.pins()).expect_err("locked");
    assert!(matches!(err, PinError::InUse(_)), "{err}");
    assert!(
        err.to_string().contains("in use by another balancer"),
        "{err}"
    );
    drop(first);
    Pins::open(&fs.pins()).expect("free again");
}

#[test]
fn a_pin_dir_off_a_bpf_filesystem_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Pins::open(&dir.path().join("pins")).expect_err("not bpffs");
    assert!(matches!(err, PinError::NotBpfFs(_)), "{err}");
    assert!(err.to_string().contains("mount -t bpf"), "{err}");
}
