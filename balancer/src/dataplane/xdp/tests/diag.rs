//! What the programs report, through the same bridge the daemon uses: the
//! real ring, read on demand. Events are provoked the way they happen: a
//! backend removed under its established flows (debug), a backend whose
//! egress port has no interface (warn); each level lets through its own
//! and the more severe, and off lets nothing through.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
};

use aya::maps::Array;
use balancer_common::maps::{BACKENDS_MAP, BackendEntry};

use crate::{
    config::model::KernelLog,
    dataplane::xdp::{
        diag::{
            Diagnostics, Reading,
            bridge::{Bridge, Counts, Line},
        },
        keys::mapped,
        packet::{ACK, Frame, SYN},
        testkit::{CLIENT4, Lb, VIP4, mac_of, setup, yaml},
    },
};

const WEB1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
const WEB2: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 12);

fn frames(ports: std::ops::Range<u16>, flags: u8) -> Vec<Frame> {
    ports
        .map(|p| Frame::tcp4(CLIENT4, p, VIP4, 80, flags))
        .collect()
}

/// Runs `f`; the next hop it was sent to, if it was sent.
fn hop(lb: &Lb, f: &Frame) -> Option<[u8; 6]> {
    let (verdict, out) = lb.prog.run(&f.bytes()).expect("run");
    (verdict == crate::dataplane::xdp::Verdict::Tx).then(|| out[..6].try_into().expect("mac"))
}

fn collecting(lb: &mut Lb) -> (Diagnostics, Arc<Mutex<Vec<Line>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    let bridge = Bridge::new(
        "balancer",
        Box::new(move |l: &Line| into.lock().expect("lines").push(l.clone())),
        Arc::new(Counts::default()),
    );
    let diag = Diagnostics::take(&mut lb.prog, bridge, KernelLog::Off, Reading::OnDemand)
        .expect("diagnostics");
    (diag, seen)
}

/// The lines the bridge got since the last call.
fn fresh(diag: &mut Diagnostics, seen: &Mutex<Vec<Line>>) -> Vec<Line> {
    diag.drain();
    std::mem::take(&mut *seen.lock().expect("lines"))
}

/// Sends `web1`'s packets out of an egress port that has no interface.
fn break_web1_port(lb: &mut Lb) {
    let mut backends: Array<_, BackendEntry> =
        Array::try_from(lb.prog.map_mut(BACKENDS_MAP).expect("map")).expect("array");
    let web1 = mapped(IpAddr::V4(WEB1));
    for (id, _) in &lb.tables.backends {
        let mut b = backends.get(id, 0).expect("entry");
        if b.addr == web1 {
            b.tx_port = 7;
            backends.set(*id, b, 0).expect("write");
        }
    }
}

#[test]
fn the_programs_report_at_the_level_set_and_nothing_when_off() {
    let mut lb = setup("dsr");
    let (mut diag, seen) = collecting(&mut lb);
    assert_eq!(diag.level(), KernelLog::Off);
    // Three sets of flows, placed while every backend serves.
    let sets: Vec<Vec<Frame>> = [21_000..21_120, 22_000..22_120, 23_000..23_120]
        .into_iter()
        .map(|ports| frames(ports, ACK))
        .collect();
    let on_web2: Vec<usize> = sets
        .iter()
        .map(|set| {
            set.iter()
                .filter(|f| hop(&lb, f) == Some(mac_of(IpAddr::V4(WEB2))))
                .count()
        })
        .collect();
    assert!(on_web2.iter().all(|n| *n > 0), "{on_web2:?}");
    // web2 leaves the config: its flows outlive it.
    lb.change(
        &yaml("dsr", [100, 100, 100])
            .replace("      - { address: 198.18.1.12:80, weight: 100 }\n", ""),
    );

    // Off: the events happen, nothing is reported.
    for f in &sets[0] {
        hop(&lb, f);
    }
    assert_eq!(fresh(&mut diag, &seen), Vec::new());

    // Debug: one line per flow that outlived its backend.
    diag.set(KernelLog::Debug).expect("set");
    for f in &sets[1] {
        hop(&lb, f);
    }
    let lines = fresh(&mut diag, &seen);
    assert_eq!(lines.len(), on_web2[1], "{lines:#?}");
    for l in &lines {
        assert_eq!(l.level, log::Level::Debug);
        assert_eq!(l.program, "balancer");
        assert!(l.at.starts_with("lb.rs:"), "{l:?}");
        assert!(
            l.text.starts_with("a flow outlived its backend ")
                && l.text.ends_with("; the ring places it again"),
            "{l:?}"
        );
    }
    assert_eq!(diag.counts().lines(log::Level::Debug), on_web2[1] as u64);

    // Warn: a broken egress port is reported, with the backend's address
    // as IPv4; the debug events are not.
    diag.set(KernelLog::Warn).expect("set");
    break_web1_port(&mut lb);
    for f in &sets[2] {
        hop(&lb, f);
    }
    let new_flows = frames(24_000..24_120, SYN);
    let mut dropped = 0;
    for f in &new_flows {
        if hop(&lb, f).is_none() {
            dropped += 1;
        }
    }
    let lines = fresh(&mut diag, &seen);
    assert!(dropped > 0);
    assert!(
        lines.len() >= dropped,
        "{} lines for {dropped} drops",
        lines.len()
    );
    for l in &lines {
        assert_eq!(l.level, log::Level::Warn, "{l:?}");
        assert_eq!(
            l.text,
            "backend 198.18.1.11 leaves through egress port 7, which has no interface; packet dropped"
        );
    }

    // Error: the warnings stop; a ring slot naming an empty backend (a
    // state the daemon never leaves behind) is still reported.
    diag.set(KernelLog::Error).expect("set");
    for f in &frames(25_000..25_060, SYN) {
        hop(&lb, f);
    }
    assert_eq!(fresh(&mut diag, &seen), Vec::new());
    assert_eq!(diag.level(), KernelLog::Error);
    let emptied = empty_web1(&mut lb);
    let before = diag_suppressed(&diag);
    let mut dropped = 0;
    for f in &frames(26_000..26_120, SYN) {
        if hop(&lb, f).is_none() {
            dropped += 1;
        }
    }
    let lines = fresh(&mut diag, &seen);
    assert!(dropped > 0);
    // This test writes more than the bridge's burst in no time: what the
    // rate limit held back is counted instead.
    let held = usize::try_from(diag_suppressed(&diag) - before).expect("count");
    assert_eq!(lines.len() + held, dropped, "{lines:#?}");
    for l in &lines {
        assert_eq!(l.level, log::Level::Error, "{l:?}");
        assert!(
            l.text.starts_with("listener ")
                && emptied.iter().any(|id| l
                    .text
                    .contains(&format!("names backend {id}, which is empty"))),
            "{l:?}"
        );
    }
}

fn diag_suppressed(diag: &Diagnostics) -> u64 {
    diag.counts()
        .suppressed
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Clears web1's backend entries behind the writer's back, as the daemon
/// never does; returns their ids.
fn empty_web1(lb: &mut Lb) -> Vec<u32> {
    let mut backends: Array<_, BackendEntry> =
        Array::try_from(lb.prog.map_mut(BACKENDS_MAP).expect("map")).expect("array");
    let web1 = mapped(IpAddr::V4(WEB1));
    let mut ids = Vec::new();
    for (id, entry) in &lb.tables.backends {
        if entry.addr == web1 {
            // Family 0 is what marks a slot empty.
            let empty = BackendEntry {
                family: 0,
                ..*entry
            };
            backends.set(*id, empty, 0).expect("write");
            ids.push(*id);
        }
    }
    ids
}
