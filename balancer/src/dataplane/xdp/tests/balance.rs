//! Balancing packet table: crafted frames through the loaded program with
//! real tables built from a config, asserting verdicts and exact output
//! bytes. The expected backend always comes from the proxy plane's selector
//! (`PoolState::pick`), so each case also checks that both planes agree.

use std::net::{IpAddr, Ipv4Addr};

use balancer_common::Counter;

use crate::dataplane::xdp::{
    Verdict,
    keys::mapped,
    packet::{ACK, Frame, Ip, L4, LB_MAC, SYN, checksum},
    testkit::*,
};

#[test]
fn dsr_forwards_every_vip_packet_to_the_proxy_planes_backend() {
    let lb = setup("dsr");
    let mut tagged = Frame::tcp4(CLIENT4, 40_001, VIP4, 80, SYN);
    tagged.vlan = Some(7);
    let mut options = Frame::tcp4(CLIENT4, 40_002, VIP4, 80, SYN);
    if let Ip::V4 { options: o, .. } = &mut options.ip {
        *o = vec![7, 7, 4, 0, 0, 0, 0];
    }
    let mut first_fragment = Frame::udp4(CLIENT4, 40_003, VIP4, 53);
    if let Ip::V4 { more_fragments, .. } = &mut first_fragment.ip {
        *more_fragments = true;
    }
    let cases: Vec<(&str, usize, Frame)> = vec![
        (
            "tcp syn over ipv4",
            0,
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN),
        ),
        (
            "tcp ack over ipv4",
            0,
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK),
        ),
        ("udp over ipv4", 1, Frame::udp4(CLIENT4, 40_000, VIP4, 53)),
        (
            "tcp over ipv6",
            2,
            Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN),
        ),
        ("udp over ipv6", 3, Frame::udp6(CLIENT6, 40_000, VIP6, 53)),
        ("vlan-tagged tcp keeps its tag", 0, tagged),
        ("ipv4 options", 0, options),
        ("first fragment is balanced by its ports", 1, first_fragment),
    ];
    for (what, listener, frame) in cases {
        let bytes = frame.bytes();
        let want = proxy_pick(&lb.config, listener, &flow_of(&frame));
        let (verdict, out) = lb
            .prog
            .run(&bytes)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(verdict, Verdict::Tx, "{what}");
        assert_eq!(
            out,
            dsr_expected(&bytes, want),
            "{what}: expected backend {want}"
        );
    }
    let c = counters(&lb.prog);
    assert_eq!(c[Counter::ForwardDsr as usize], 8);
    // SYNs are placed by the ring alone; the ACK records its flow.
    assert_eq!(c[Counter::FlowSyn as usize], 4);
    assert_eq!(c[Counter::FlowNew as usize], 4, "the ack and the udp flows");
}

#[test]
fn non_vip_traffic_passes_untouched() {
    let lb = setup("dsr");
    let mut non_first = Frame::udp4(CLIENT4, 40_000, OTHER4, 53);
    if let Ip::V4 { frag_offset, .. } = &mut non_first.ip {
        *frag_offset = 185;
    }
    let cases: Vec<(&str, Frame, Counter)> = vec![
        (
            "other destination",
            Frame::tcp4(CLIENT4, 40_000, OTHER4, 80, SYN),
            Counter::NotVip,
        ),
        (
            "vip on an unconfigured port",
            Frame::tcp4(CLIENT4, 40_000, VIP4, 81, SYN),
            Counter::NotVip,
        ),
        (
            "vip port with the other protocol",
            Frame::udp4(CLIENT4, 40_000, VIP4, 80),
            Counter::NotVip,
        ),
        (
            "ipv6 vip on an unconfigured port",
            Frame::tcp6(CLIENT6, 40_000, VIP6, 443, SYN),
            Counter::NotVip,
        ),
        (
            "non-first fragment to an address with no xdp vip",
            non_first,
            Counter::ParseFragment,
        ),
    ];
    for (what, frame, counter) in cases {
        let before = counters(&lb.prog);
        let bytes = frame.bytes();
        let (verdict, out) = lb.prog.run(&bytes).expect("run");
        assert_eq!(verdict, Verdict::Pass, "{what}");
        assert_eq!(out, bytes, "{what}");
        assert_eq!(
            counters(&lb.prog)[counter as usize],
            before[counter as usize] + 1,
            "{what}"
        );
    }
}

#[test]
fn flow_table_records_new_flows_and_hits_them_after() {
    let lb = setup("dsr");
    let frame = Frame::tcp4(CLIENT4, 41_000, VIP4, 80, SYN);
    let flow = flow_of(&frame);
    assert_eq!(lb.prog.flow(&flow).expect("lookup"), None);
    lb.prog.run(&frame.bytes()).expect("run");
    assert_eq!(
        lb.prog.flow(&flow).expect("lookup"),
        None,
        "a SYN alone records nothing"
    );
    lb.prog
        .run(&Frame::tcp4(CLIENT4, 41_000, VIP4, 80, ACK).bytes())
        .expect("run");
    let id = lb.prog.flow(&flow).expect("lookup").expect("recorded");
    for _ in 0..3 {
        lb.prog
            .run(&Frame::tcp4(CLIENT4, 41_000, VIP4, 80, ACK).bytes())
            .expect("run");
    }
    let c = counters(&lb.prog);
    assert_eq!(
        (c[Counter::FlowNew as usize], c[Counter::FlowHit as usize]),
        (1, 3)
    );
    assert_eq!(lb.prog.flow(&flow).expect("lookup"), Some(id));
}

/// A weight change rebuilds the ring; flows already placed stay where they
/// are (flow table first), new flows follow the new ring.
#[test]
fn weight_change_keeps_established_flows() {
    let mut lb = setup("dsr");
    let frames: Vec<Frame> = (0..300)
        .map(|p| Frame::tcp4(CLIENT4, 20_000 + p, VIP4, 80, ACK))
        .collect();
    let before: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| lb.prog.run(&f.bytes()).expect("run").1)
        .collect();
    lb.change(&yaml("dsr", [1000, 10, 10]));
    for (f, old) in frames.iter().zip(&before) {
        let (_, now) = lb
            .prog
            .run(&Frame::tcp4(CLIENT4, flow_of(f).src_port, VIP4, 80, ACK).bytes())
            .expect("run");
        assert_eq!(now[..6], old[..6], "established flow moved");
    }
    // New flows follow the new weights: almost all on the heavy backend.
    let heavy = mac_of(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)));
    let on_heavy = (0..200u16)
        .filter(|p| {
            lb.prog
                .run(&Frame::tcp4(CLIENT4, 50_000 + p, VIP4, 80, SYN).bytes())
                .expect("run")
                .1[..6]
                == heavy
        })
        .count();
    assert!(
        on_heavy > 180,
        "{on_heavy} of 200 new flows on the heavy backend"
    );
}

fn ipip_expected(frame: &[u8], l3: usize, v6: bool, backend: IpAddr) -> Vec<u8> {
    let inner = &frame[l3..];
    let mut out = Vec::new();
    out.extend_from_slice(&mac_of(backend));
    out.extend_from_slice(&LB_MAC);
    if v6 {
        out.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        out.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        out.extend_from_slice(&[41, 64]);
        out.extend_from_slice(&TUN6);
        out.extend_from_slice(&mapped(backend));
    } else {
        let mut h = vec![0x45, inner[1]];
        h.extend_from_slice(&(inner.len() as u16 + 20).to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 64, 4, 0, 0]);
        h.extend_from_slice(&TUN4);
        h.extend_from_slice(&mapped(backend)[12..]);
        let c = checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&[0x08, 0x00]);
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(inner);
    out
}

#[test]
fn ipip_encapsulates_with_exact_outer_headers() {
    let lb = setup("ipip");
    let mut tagged = Frame::udp4(CLIENT4, 40_000, VIP4, 53);
    tagged.vlan = Some(7);
    let cases: Vec<(&str, usize, Frame)> = vec![
        (
            "tcp over ipv4",
            0,
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN),
        ),
        ("udp over ipv4", 1, Frame::udp4(CLIENT4, 40_000, VIP4, 53)),
        (
            "tcp over ipv6",
            2,
            Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN),
        ),
        ("udp over ipv6", 3, Frame::udp6(CLIENT6, 40_000, VIP6, 53)),
        ("vlan-tagged frame leaves untagged", 1, tagged),
    ];
    for (what, listener, frame) in cases {
        let bytes = frame.bytes();
        let v6 = matches!(frame.ip, Ip::V6 { .. });
        let l3 = if frame.vlan.is_some() { 18 } else { 14 };
        let want = proxy_pick(&lb.config, listener, &flow_of(&frame));
        let (verdict, out) = lb
            .prog
            .run(&bytes)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(verdict, Verdict::Tx, "{what}");
        assert_eq!(out, ipip_expected(&bytes, l3, v6, want), "{what}");
        if !v6 {
            assert_eq!(checksum(&[&out[14..34]]), 0, "{what}: outer checksum");
        }
    }
    assert_eq!(counters(&lb.prog)[Counter::ForwardIpip as usize], 5);
}

#[test]
fn ipip_drops_what_would_exceed_the_mtu_and_counts_it() {
    let lb = setup("ipip");
    let mut fits = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK);
    fits.payload = vec![0; MTU as usize - 20 - 20 - 20];
    let mut too_big = fits.clone();
    too_big.payload.push(0);
    assert_eq!(
        lb.prog.run(&fits.bytes()).expect("run").0,
        Verdict::Tx,
        "exactly at the MTU"
    );
    assert_eq!(
        lb.prog.run(&too_big.bytes()).expect("run").0,
        Verdict::Drop,
        "one byte over"
    );
    assert_eq!(counters(&lb.prog)[Counter::DropTooBig as usize], 1);
    assert_drops_have_reasons(&lb.prog);
}

/// ICMP "fragmentation needed" for a packet the backend sent from the VIP
/// goes to that backend, found through the quoted (turned-around) flow; it
/// never creates a flow-table entry.
#[test]
fn icmp_too_big_follows_the_flow_it_quotes() {
    let lb = setup("dsr");
    let router = Ipv4Addr::new(198, 18, 0, 254);
    let quoted = Frame::tcp4(VIP4, 80, CLIENT4, 42_000, ACK).bytes();
    let mut icmp = Frame::udp4(router, 0, VIP4, 0);
    icmp.l4 = L4::Other(1);
    icmp.payload = [3, 4, 0, 0, 0, 0, 0x05, 0xc8].to_vec();
    icmp.payload.extend_from_slice(&quoted[14..14 + 28]);
    let flow = flow_of(&Frame::tcp4(CLIENT4, 42_000, VIP4, 80, SYN));
    let want = proxy_pick(&lb.config, 0, &flow);
    let bytes = icmp.bytes();
    let (verdict, out) = lb.prog.run(&bytes).expect("run");
    assert_eq!(verdict, Verdict::Tx);
    assert_eq!(out, dsr_expected(&bytes, want));
    assert_eq!(
        lb.prog.flow(&flow).expect("lookup"),
        None,
        "icmp must not create flows"
    );
    let c = counters(&lb.prog);
    assert_eq!(
        (
            c[Counter::IcmpTooBig as usize],
            c[Counter::FlowNew as usize]
        ),
        (1, 0)
    );
    // An echo request to the VIP is not balanced.
    let mut echo = Frame::udp4(CLIENT4, 0, VIP4, 0);
    echo.l4 = L4::Other(1);
    echo.payload = vec![8, 0, 0, 0, 0, 1, 0, 1];
    assert_eq!(lb.prog.run(&echo.bytes()).expect("run").0, Verdict::Pass);
}

#[test]
fn vip_without_backends_drops_with_a_reason() {
    let lb = setup("dsr");
    let frame = Frame::tcp4(CLIENT4, 40_000, VIP4, 8080, SYN);
    assert_eq!(lb.prog.run(&frame.bytes()).expect("run").0, Verdict::Drop);
    assert_eq!(counters(&lb.prog)[Counter::DropNoBackend as usize], 1);
    assert_drops_have_reasons(&lb.prog);
}

/// 500 flows: the kernel's choice equals the proxy plane's for each one.
#[test]
fn xdp_and_proxy_planes_agree_on_every_flow() {
    let lb = setup("dsr");
    for i in 0..500u16 {
        let src = Ipv4Addr::new(198, 18, 0, (i % 200) as u8 + 20);
        let frame = Frame::tcp4(src, 1024 + i * 7, VIP4, 80, SYN);
        let want = proxy_pick(&lb.config, 0, &flow_of(&frame));
        let (_, out) = lb.prog.run(&frame.bytes()).expect("run");
        assert_eq!(out[..6], mac_of(want), "flow {i}");
    }
}

/// Every VIP template cut at every length the kernel accepts, with real
/// tables loaded and both forwarding modes: never aborted, and a frame cut
/// inside its headers is passed, not forwarded half-parsed.
#[test]
fn truncated_vip_frames_never_abort() {
    for mode in ["dsr", "ipip"] {
        let lb = setup(mode);
        let templates = [
            Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN).bytes(),
            Frame::udp4(CLIENT4, 40_000, VIP4, 53).bytes(),
            Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN).bytes(),
            Frame::udp6(CLIENT6, 40_000, VIP6, 53).bytes(),
        ];
        for t in &templates {
            // The templates carry 5 payload bytes; anything shorter than
            // the rest is cut inside its headers and must be passed.
            let headers = t.len() - 5;
            for len in 14..t.len() {
                let (verdict, _) = lb.prog.run(&t[..len]).expect("run");
                assert_ne!(verdict, Verdict::Aborted, "{mode}: cut to {len}");
                if len < headers {
                    assert_eq!(
                        verdict,
                        Verdict::Pass,
                        "{mode}: cut to {len} inside the headers"
                    );
                }
            }
        }
        assert_drops_have_reasons(&lb.prog);
    }
}

/// Removing a backend moves only its flows: the others stay put (flow
/// table), the removed one's flows are placed again on the survivors, and
/// a removed VIP stops being balanced.
#[test]
fn removing_a_backend_moves_only_its_flows() {
    let mut lb = setup("dsr");
    let removed = mac_of(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12)));
    let frames: Vec<Frame> = (0..300)
        .map(|p| Frame::tcp4(CLIENT4, 30_000 + p, VIP4, 80, ACK))
        .collect();
    let before: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| lb.prog.run(&f.bytes()).expect("run").1)
        .collect();
    assert!(
        before.iter().any(|o| o[..6] == removed),
        "some flows start on the backend to remove"
    );
    let without = yaml("dsr", [100, 100, 100])
        .replace("      - { address: 198.18.1.12:80, weight: 100 }\n", "");
    lb.change(&without);
    for (f, old) in frames.iter().zip(&before) {
        let ack = Frame::tcp4(CLIENT4, flow_of(f).src_port, VIP4, 80, ACK);
        let (verdict, now) = lb.prog.run(&ack.bytes()).expect("run");
        assert_eq!(verdict, Verdict::Tx);
        if old[..6] == removed {
            assert_ne!(now[..6], removed, "a flow stayed on the removed backend");
        } else {
            assert_eq!(now[..6], old[..6], "a flow on a surviving backend moved");
        }
    }
    // The VIP goes away: its packets pass to the kernel again.
    let web4 = "  - { name: web4, address: 198.18.0.10:80, protocol: tcp, mode: xdp, pool: web }\n";
    assert!(without.contains(web4));
    lb.change(&without.replace(web4, ""));
    let (verdict, _) = lb.prog.run(&frames[0].bytes()).expect("run");
    assert_eq!(verdict, Verdict::Pass);
}

/// A VIP removed while its pool still serves another VIP: its established
/// flows must stop being forwarded (the program looks flows up first, so
/// userspace purges them), while the other VIP's flows carry on.
#[test]
fn removing_a_vip_purges_its_flows_even_when_its_pool_stays() {
    let web4 = "  - { name: web4, address: 198.18.0.10:80, protocol: tcp, mode: xdp, pool: web }\n";
    let second =
        "  - { name: web4b, address: 198.18.0.11:80, protocol: tcp, mode: xdp, pool: web }\n";
    let both = yaml("dsr", [100, 100, 100]).replace(web4, &format!("{web4}{second}"));
    let mut lb = setup("dsr");
    lb.change(&both);
    let vip_b = Ipv4Addr::new(198, 18, 0, 11);
    let on_b = Frame::tcp4(CLIENT4, 45_000, vip_b, 80, SYN);
    let on_a = Frame::tcp4(CLIENT4, 45_000, VIP4, 80, SYN);
    assert_eq!(lb.prog.run(&on_b.bytes()).expect("run").0, Verdict::Tx);
    assert_eq!(lb.prog.run(&on_a.bytes()).expect("run").0, Verdict::Tx);
    lb.change(&both.replace(second, ""));
    let ack_b = Frame::tcp4(CLIENT4, 45_000, vip_b, 80, ACK);
    assert_eq!(
        lb.prog.run(&ack_b.bytes()).expect("run").0,
        Verdict::Pass,
        "flow of a removed VIP still forwarded"
    );
    assert_eq!(lb.prog.flow(&flow_of(&on_b)).expect("lookup"), None);
    let ack_a = Frame::tcp4(CLIENT4, 45_000, VIP4, 80, ACK);
    assert_eq!(lb.prog.run(&ack_a.bytes()).expect("run").0, Verdict::Tx);
}
