//! The `xdp_frame` target: arbitrary frames through the balancing XDP
//! program with live maps (`BPF_PROG_TEST_RUN`; needs root), in DSR or
//! IP-in-IP mode by the input's first byte. The program never returns
//! `XDP_ABORTED`, and a frame it sends (`XDP_TX`, `XDP_REDIRECT`) carries
//! valid IP and TCP/UDP checksums whenever the frame it was given did. The
//! harness repairs the checksums of each input first where its headers
//! allow, so the fuzzer's mutations reach the program as a real network's
//! frames would, and not only as frames with broken checksums, which the
//! program forwards as they came.
//!
//! libFuzzer sees only code in this process, not the program's branches in
//! the kernel, so each run also reads the program's counters (verdicts,
//! parse outcomes, balancing paths, drop reasons) and passes through one
//! distinct function per counter that moved: a frame that takes the
//! program down a path no earlier frame took is new coverage to the
//! fuzzer, and is kept.

use std::sync::{Mutex, OnceLock, PoisonError};

use balancer_common::Counter;

use crate::dataplane::xdp::{
    Verdict,
    packet::checksum,
    testkit::{Lb, setup},
};

/// The longest frame tried: `BPF_PROG_TEST_RUN` takes up to a page less
/// the kernel's head and tail room for XDP.
const MAX_FRAME: usize = 3000;
/// The shortest: an Ethernet header.
const MIN_FRAME: usize = 14;

/// The program in each forwarding mode, loaded once per process and fed
/// every input in turn, so its flow table carries state between them.
struct Programs {
    dsr: Lb,
    ipip: Lb,
    /// Each program's counters after the last run.
    seen: [[u64; Counter::COUNT as usize]; 2],
}

static PROGRAMS: OnceLock<Mutex<Programs>> = OnceLock::new();

/// One frame through the program (see the module docs).
///
/// # Panics
/// When the program returns `XDP_ABORTED`, or sends a frame with a wrong
/// checksum that it was given with right ones.
pub fn xdp_frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < MIN_FRAME {
        return;
    }
    let mut frame = rest[..rest.len().min(MAX_FRAME)].to_vec();
    let given_valid = matches!(repair(&mut frame), Check::Valid);
    // The kernel refuses some frames before the program sees them.
    let Some((verdict, out)) = run(mode, &frame) else {
        return;
    };
    assert_ne!(verdict, Verdict::Aborted, "XDP_ABORTED for {frame:02x?}");
    if given_valid && matches!(verdict, Verdict::Tx | Verdict::Redirect) {
        match verify(&out) {
            Check::Valid => {}
            other => panic!("sent {other:?}: given {frame:02x?}, sent {out:02x?}"),
        }
    }
}

/// `frame` through the program of `mode` (even: DSR, odd: IP-in-IP), its
/// counters' moves made visible as coverage.
fn run(mode: u8, frame: &[u8]) -> Option<(Verdict, Vec<u8>)> {
    let programs = PROGRAMS.get_or_init(|| {
        Mutex::new(Programs {
            dsr: setup("dsr"),
            ipip: setup("ipip"),
            seen: [[0; Counter::COUNT as usize]; 2],
        })
    });
    let mut programs = programs.lock().unwrap_or_else(PoisonError::into_inner);
    let m = usize::from(mode & 1);
    let lb = if m == 0 {
        &programs.dsr
    } else {
        &programs.ipip
    };
    let outcome = lb.prog.run(frame).ok();
    if let Ok(now) = lb.prog.counters() {
        for (i, (after, before)) in now.iter().zip(programs.seen[m]).enumerate() {
            if *after != before {
                reached(i);
            }
        }
        programs.seen[m] = now;
    }
    outcome
}

/// One function per program counter, so each is an edge of its own.
#[inline(never)]
fn path<const N: usize>() {
    std::hint::black_box(N);
}

macro_rules! paths {
    ($i:expr; $($n:literal)*) => {
        match $i {
            $($n => path::<$n>(),)*
            _ => {}
        }
    };
}

fn reached(counter: usize) {
    const _: () = assert!(Counter::COUNT == 39, "one arm per counter below");
    paths!(counter; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
        21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38);
}

/// What a frame's checksums say.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Every IP header and TCP/UDP segment in it checks out.
    Valid,
    /// One does not: which.
    Invalid(String),
    /// Not a frame whose checksums can be checked: not IP, cut short, a
    /// fragment, or an IPv6 extension header.
    Opaque,
}

/// Sets every checksum in `frame` right where its headers allow.
pub fn repair(frame: &mut [u8]) -> Check {
    walk_frame(frame, true)
}

/// Checks every checksum in `frame`.
#[must_use]
pub fn verify(frame: &[u8]) -> Check {
    let mut copy = frame.to_vec();
    walk_frame(&mut copy, false)
}

fn walk_frame(f: &mut [u8], fix: bool) -> Check {
    let mut at = 12;
    let mut ethertype = be16(f, at);
    if ethertype == Some(0x8100) {
        at += 4;
        ethertype = be16(f, at);
    }
    match ethertype {
        Some(0x0800) => ipv4(f, at + 2, fix, 0),
        Some(0x86dd) => ipv6(f, at + 2, fix, 0),
        _ => Check::Opaque,
    }
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

/// Tunnels nest at most this deep (IP-in-IP of IP-in-IP).
const MAX_DEPTH: u8 = 2;

fn ipv4(f: &mut [u8], at: usize, fix: bool, depth: u8) -> Check {
    let Some(&first) = f.get(at) else {
        return Check::Opaque;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    let Some(total) = be16(f, at + 2).map(usize::from) else {
        return Check::Opaque;
    };
    if first >> 4 != 4 || ihl < 20 || total < ihl || at + total > f.len() {
        return Check::Opaque;
    }
    let fragment = be16(f, at + 6).unwrap_or(0) & 0x3fff != 0;
    let header = at..at + ihl;
    if fix {
        f[at + 10..at + 12].fill(0);
        let sum = checksum(&[&f[header.clone()]]);
        f[at + 10..at + 12].copy_from_slice(&sum.to_be_bytes());
    } else if checksum(&[&f[header]]) != 0 {
        return Check::Invalid(format!("an IPv4 header checksum at byte {at}"));
    }
    if fragment {
        return Check::Opaque;
    }
    let proto = f[at + 9];
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&f[at + 12..at + 20]);
    pseudo.extend_from_slice(&[0, proto]);
    payload(f, at + ihl, at + total, proto, pseudo, fix, depth)
}

fn ipv6(f: &mut [u8], at: usize, fix: bool, depth: u8) -> Check {
    let (Some(&first), Some(len)) = (f.get(at), be16(f, at + 4)) else {
        return Check::Opaque;
    };
    let end = at + 40 + usize::from(len);
    if first >> 4 != 6 || end > f.len() {
        return Check::Opaque;
    }
    let next = f[at + 6];
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&f[at + 8..at + 40]);
    pseudo.extend_from_slice(&u32::from(len).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next]);
    payload(f, at + 40, end, next, pseudo, fix, depth)
}

/// What follows an IP header, from `start` to `end`: a TCP or UDP segment
/// (checked against `pseudo` with its length), a tunnelled packet, or
/// something without a checksum of this kind.
fn payload(
    f: &mut [u8],
    start: usize,
    end: usize,
    proto: u8,
    mut pseudo: Vec<u8>,
    fix: bool,
    depth: u8,
) -> Check {
    let (sum_at, min) = match proto {
        6 => (16, 20),
        17 => (6, 8),
        4 if depth < MAX_DEPTH => return ipv4(f, start, fix, depth + 1),
        41 if depth < MAX_DEPTH => return ipv6(f, start, fix, depth + 1),
        // IPv6 extension headers would move the segment.
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => return Check::Opaque,
        _ => return Check::Valid,
    };
    let len = end - start;
    if len < min {
        return Check::Opaque;
    }
    // An IPv4 pseudo-header carries the segment's length; IPv6's already
    // does (from the payload length).
    if pseudo.len() == 10 {
        pseudo.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    }
    let ipv4 = pseudo.len() == 12;
    if proto == 17 {
        if fix {
            let l = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
            f[start + 4..start + 6].copy_from_slice(&l);
        } else if be16(f, start + 4) != u16::try_from(len).ok() {
            return Check::Invalid(format!("a UDP length at byte {start}"));
        }
    }
    let field = start + sum_at..start + sum_at + 2;
    if fix {
        f[field.clone()].fill(0);
        let mut sum = checksum(&[&pseudo, &f[start..end]]);
        if proto == 17 && sum == 0 {
            sum = 0xffff;
        }
        f[field].copy_from_slice(&sum.to_be_bytes());
        return Check::Valid;
    }
    if proto == 17 && ipv4 && f[field] == [0, 0] {
        return Check::Valid;
    }
    if checksum(&[&pseudo, &f[start..end]]) == 0 {
        Check::Valid
    } else {
        Check::Invalid(format!(
            "a {} checksum at byte {start}",
            if proto == 6 { "TCP" } else { "UDP" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::xdp::{
        packet::{ACK, Frame, SYN},
        testkit::{CLIENT4, CLIENT6, OTHER4, VIP4, VIP6},
    };

    /// The packet tests' own frames: what the program is fed is valid,
    /// a flipped byte in a segment is caught, and fixing repairs it.
    #[test]
    fn templates_verify_and_a_flipped_byte_is_caught_then_repaired() {
        for f in [
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN),
            Frame::udp4(CLIENT4, 40_000, VIP4, 53),
            Frame::tcp6(CLIENT6, 40_000, VIP6, 80, ACK),
            Frame::udp6(CLIENT6, 40_000, VIP6, 53),
        ] {
            let mut bytes = f.bytes();
            assert_eq!(verify(&bytes), Check::Valid, "{f:?}");
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            assert!(matches!(verify(&bytes), Check::Invalid(_)), "{f:?}");
            assert_eq!(repair(&mut bytes), Check::Valid);
            assert_eq!(verify(&bytes), Check::Valid);
        }
        // Not IP, and a frame cut inside its IP header.
        assert_eq!(verify(&[0u8; 60]), Check::Opaque);
        let cut = Frame::tcp4(CLIENT4, 1, OTHER4, 2, ACK).bytes();
        assert_eq!(verify(&cut[..30]), Check::Opaque);
    }

    /// What the program sends for the templates checks out in both modes,
    /// the IP-in-IP outer header included.
    #[test]
    fn the_programs_own_answers_to_the_templates_pass() {
        for mode in [0u8, 1] {
            for f in [
                Frame::tcp4(CLIENT4, 40_001, VIP4, 80, SYN),
                Frame::udp6(CLIENT6, 40_001, VIP6, 53),
            ] {
                let (verdict, out) = run(mode, &f.bytes()).expect("a run");
                assert_eq!(verdict, Verdict::Tx, "{f:?}");
                assert_eq!(verify(&out), Check::Valid, "{f:?} in mode {mode}");
                // A tunnel header in IP-in-IP mode.
                assert_eq!(out.len() > f.bytes().len(), mode == 1);
            }
        }
    }

    /// Regenerates the seed corpus from the packet tests' templates
    /// (`cargo test -p balancer --lib fuzzing::xdp -- --ignored`).
    #[test]
    #[ignore = "writes fuzz/corpus/xdp_frame"]
    fn write_the_seed_corpus() {
        use crate::dataplane::xdp::packet::{Ip, L4};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/xdp_frame");
        std::fs::create_dir_all(&dir).expect("corpus dir");
        let fin_ack = 0x11;
        let rst = 0x04;
        let mut frames = vec![
            ("tcp4-syn", Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN)),
            ("tcp4-ack", Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK)),
            ("tcp4-fin", Frame::tcp4(CLIENT4, 40_000, VIP4, 80, fin_ack)),
            ("tcp4-rst", Frame::tcp4(CLIENT4, 40_000, VIP4, 80, rst)),
            (
                "tcp4-drained",
                Frame::tcp4(CLIENT4, 40_000, VIP4, 8080, SYN),
            ),
            ("tcp4-other", Frame::tcp4(CLIENT4, 40_000, OTHER4, 80, SYN)),
            ("udp4", Frame::udp4(CLIENT4, 40_000, VIP4, 53)),
            ("tcp6-syn", Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN)),
            ("tcp6-ack", Frame::tcp6(CLIENT6, 40_000, VIP6, 80, ACK)),
            ("udp6", Frame::udp6(CLIENT6, 40_000, VIP6, 53)),
        ];
        let mut vlan = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN);
        vlan.vlan = Some(7);
        frames.push(("tcp4-vlan", vlan));
        let mut options = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK);
        if let Ip::V4 { options: o, .. } = &mut options.ip {
            *o = vec![1, 1, 1, 1];
        }
        frames.push(("tcp4-options", options));
        let mut fragment = Frame::udp4(CLIENT4, 40_000, VIP4, 53);
        if let Ip::V4 { more_fragments, .. } = &mut fragment.ip {
            *more_fragments = true;
        }
        frames.push(("udp4-fragment", fragment));
        let mut icmp = Frame::tcp4(CLIENT4, 0, VIP4, 0, 0);
        icmp.l4 = L4::Other(1);
        frames.push(("icmp4", icmp));
        for (name, f) in frames {
            for (mode, tag) in [(0u8, "dsr"), (1, "ipip")] {
                let mut bytes = vec![mode];
                bytes.extend(f.bytes());
                std::fs::write(dir.join(format!("{tag}-{name}")), bytes).expect("write seed");
            }
        }
    }
}
