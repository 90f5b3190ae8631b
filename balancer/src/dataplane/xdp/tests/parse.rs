//! Parsing with no VIP: crafted frames of every shape (VLAN tags, IP
//! options, fragments, ARP, frames cut short) through the program with
//! empty maps, asserting the verdict, the unchanged frame and the counter
//! each one moves.

use std::net::{Ipv4Addr, Ipv6Addr};

use balancer_common::Counter;

use crate::dataplane::xdp::{
    Sizes, Verdict, XdpProgram,
    packet::{ACK, Frame, Ip, L4, SYN},
};

const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);

/// The program with empty maps: no VIP, so every packet is passed.
fn load() -> XdpProgram {
    let sizes = Sizes {
        flows: 16,
        ..Sizes::MINIMAL
    };
    XdpProgram::load(sizes).unwrap_or_else(|e| panic!("{e}"))
}

fn with_vlan(mut f: Frame) -> Frame {
    f.vlan = Some(42);
    f
}

fn with_ip_options(mut f: Frame) -> Frame {
    if let Ip::V4 { options, .. } = &mut f.ip {
        // Record-route option: type 7, length 7, pointer 4, one empty slot.
        *options = vec![7, 7, 4, 0, 0, 0, 0];
    }
    f
}

fn fragment(mut f: Frame, offset: u16, more: bool) -> Frame {
    if let Ip::V4 {
        frag_offset,
        more_fragments,
        ..
    } = &mut f.ip
    {
        *frag_offset = offset;
        *more_fragments = more;
    }
    f
}

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0u8; 28]);
    f
}

/// `(description, frame, expected parse outcome, tagged)`.
fn cases() -> Vec<(&'static str, Vec<u8>, Counter, bool)> {
    let tcp4 = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN);
    let udp4 = Frame::udp4(CLIENT4, 40_000, VIP4, 53);
    let tcp6 = Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN);
    let udp6 = Frame::udp6(CLIENT6, 40_000, VIP6, 53);
    let mut icmp4 = Frame::udp4(CLIENT4, 0, VIP4, 0);
    icmp4.l4 = L4::Other(1);
    // Echo request: type 8, code 0, checksum, identifier, sequence.
    icmp4.payload = vec![8, 0, 0, 0, 0, 1, 0, 1];
    let mut icmp6 = Frame::udp6(CLIENT6, 0, VIP6, 0);
    icmp6.l4 = L4::Other(58);
    icmp6.payload = vec![128, 0, 0, 0, 0, 1, 0, 1];
    let mut hop_by_hop = Frame::udp6(CLIENT6, 0, VIP6, 0);
    hop_by_hop.l4 = L4::Other(0);
    let mut bad_ihl = tcp4.bytes();
    bad_ihl[14] = 0x44; // IHL 4 words: shorter than the fixed header
    let mut bad_version = tcp4.bytes();
    bad_version[14] = 0x55;
    vec![
        ("tcp syn over ipv4", tcp4.bytes(), Counter::ParseTcp4, false),
        (
            "tcp ack over ipv4",
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK).bytes(),
            Counter::ParseTcp4,
            false,
        ),
        ("udp over ipv4", udp4.bytes(), Counter::ParseUdp4, false),
        ("tcp over ipv6", tcp6.bytes(), Counter::ParseTcp6, false),
        ("udp over ipv6", udp6.bytes(), Counter::ParseUdp6, false),
        (
            "tcp over ipv4 in vlan",
            with_vlan(tcp4.clone()).bytes(),
            Counter::ParseTcp4,
            true,
        ),
        (
            "udp over ipv6 in vlan",
            with_vlan(udp6.clone()).bytes(),
            Counter::ParseUdp6,
            true,
        ),
        (
            "tcp over ipv4 with options",
            with_ip_options(tcp4.clone()).bytes(),
            Counter::ParseTcp4,
            false,
        ),
        (
            "udp over ipv4 with options in vlan",
            with_vlan(with_ip_options(udp4.clone())).bytes(),
            Counter::ParseUdp4,
            true,
        ),
        (
            "first fragment carries ports",
            fragment(udp4.clone(), 0, true).bytes(),
            Counter::ParseUdp4,
            false,
        ),
        (
            "non-first fragment",
            fragment(udp4.clone(), 185, false).bytes(),
            Counter::ParseFragment,
            false,
        ),
        (
            "icmp over ipv4",
            icmp4.bytes(),
            Counter::ParseOtherL4,
            false,
        ),
        ("icmpv6", icmp6.bytes(), Counter::ParseOtherL4, false),
        (
            "ipv6 hop-by-hop header",
            hop_by_hop.bytes(),
            Counter::ParseUnsupported,
            false,
        ),
        (
            "ipv4 header length below 20",
            bad_ihl,
            Counter::ParseUnsupported,
            false,
        ),
        (
            "ethertype ipv4 with version 5",
            bad_version,
            Counter::ParseUnsupported,
            false,
        ),
        ("arp", arp(), Counter::ParseNonIp, false),
    ]
}

#[test]
fn every_case_passes_unchanged_and_is_counted() {
    let prog = load();
    let cases = cases();
    for (i, (what, frame, outcome, tagged)) in cases.iter().enumerate() {
        let before = prog.counters().expect("counters");
        let (verdict, out) = prog.run(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(verdict, Verdict::Pass, "case {i}: {what}");
        assert_eq!(&out, frame, "case {i}: {what}: frame must pass unchanged");
        let after = prog.counters().expect("counters");
        for c in Counter::ALL {
            let delta = after[c as usize] - before[c as usize];
            // TCP and UDP packets also meet the VIP lookup, and miss.
            let balanced = matches!(
                outcome,
                Counter::ParseTcp4 | Counter::ParseUdp4 | Counter::ParseTcp6 | Counter::ParseUdp6
            );
            let expected = u64::from(
                c == *outcome
                    || c == Counter::VerdictPass
                    || (c == Counter::Vlan && *tagged)
                    || (c == Counter::NotVip && balanced),
            );
            assert_eq!(delta, expected, "case {i}: {what}: counter {}", c.name());
        }
    }
}

/// Every template cut at every length the kernel accepts for XDP test runs
/// (from the 14-byte Ethernet header up): never aborted, always counted once
/// by verdict and once by parse outcome.
#[test]
fn truncated_frames_never_abort() {
    let prog = load();
    let mut runs = 0u64;
    for (what, frame, outcome, _) in cases() {
        for len in 14..frame.len() {
            let (verdict, _) = prog
                .run(&frame[..len])
                .unwrap_or_else(|e| panic!("{what} cut to {len}: {e}"));
            assert_eq!(verdict, Verdict::Pass, "{what} cut to {len}");
            runs += 1;
        }
        let _ = outcome;
    }
    let c = prog.counters().expect("counters");
    assert_eq!(c[Counter::VerdictPass as usize], runs);
    let outcomes: u64 = Counter::ALL
        .iter()
        .filter(|k| k.is_parse_outcome())
        .map(|&k| c[k as usize])
        .sum();
    assert_eq!(outcomes, runs, "each run has exactly one parse outcome");
    assert!(c[Counter::ParseTruncated as usize] > 0);
}

/// A frame cut inside its TCP or UDP header is truncated, not parsed: the
/// later stages read ports and flags, which must be inside the frame.
#[test]
fn cut_transport_header_is_truncated() {
    let prog = load();
    let frame = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN).bytes();
    // Ethernet 14 + IPv4 20 + 19 of the 20 TCP header bytes.
    prog.run(&frame[..53]).expect("run");
    let c = prog.counters().expect("counters");
    assert_eq!(c[Counter::ParseTruncated as usize], 1);
    assert_eq!(c[Counter::ParseTcp4 as usize], 0);
}
