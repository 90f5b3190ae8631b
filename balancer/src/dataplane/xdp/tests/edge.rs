//! Edge cases of balancing, one described row each: TCP flag variants, empty
//! datagrams, tagged IPv6, ICMP messages that must and must not be routed,
//! IPv6 extension headers, and quoted headers cut short. Each row gives the
//! frame, the expected verdict, the counter that must move and, when
//! forwarded, the listener whose proxy-plane pick the frame must reach.

use std::net::{IpAddr, Ipv4Addr};

use balancer_common::{Counter, FlowTuple};

use crate::dataplane::xdp::{
    Verdict,
    packet::{ACK, Frame, L4, SYN},
    testkit::{CLIENT4, CLIENT6, VIP4, VIP6, counters, flow_of, mac_of, proxy_pick, setup},
};

const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

/// An ICMP or `ICMPv6` message of `kind`/`code` from a router, quoting the
/// first 28 (IPv4) or 48 (IPv6) bytes of `quoted`'s IP packet.
fn icmp(v6: bool, kind: u8, code: u8, quoted: &Frame, cut: usize) -> Frame {
    let q = quoted.bytes();
    let keep = if v6 { 48 } else { 28 }
        .min(q.len() - 14)
        .saturating_sub(cut);
    let mut f = if v6 {
        Frame::udp6("fd00:c::fe".parse().expect("ip"), 0, VIP6, 0)
    } else {
        Frame::udp4(Ipv4Addr::new(198, 18, 0, 254), 0, VIP4, 0)
    };
    f.l4 = L4::Other(if v6 { 58 } else { 1 });
    f.payload = vec![kind, code, 0, 0, 0, 0, 0x05, 0xc8];
    f.payload.extend_from_slice(&q[14..14 + keep]);
    f
}

/// What a row expects.
enum Expect {
    /// Forwarded by DSR to the proxy plane's pick for `flow` on `listener`.
    Forward { listener: usize, flow: FlowTuple },
    /// Passed to the kernel unchanged.
    Pass,
    /// Dropped (the row's counter names the reason).
    Drop,
}

#[expect(
    clippy::too_many_lines,
    reason = "a table reads best as one function, however long it gets"
)]
#[test]
fn edge_cases() {
    let lb = setup("dsr");
    let tcp = |flags| Frame::tcp4(CLIENT4, 43_000, VIP4, 80, flags);
    let web = |f: &Frame| Expect::Forward {
        listener: 0,
        flow: flow_of(f),
    };
    let mut empty_udp = Frame::udp4(CLIENT4, 43_001, VIP4, 53);
    empty_udp.payload.clear();
    let mut tagged6 = Frame::udp6(CLIENT6, 43_002, VIP6, 53);
    tagged6.vlan = Some(100);
    let mut hop_by_hop = Frame::tcp6(CLIENT6, 43_003, VIP6, 80, SYN);
    hop_by_hop.l4 = L4::Other(0);
    let reply4 = Frame::tcp4(VIP4, 80, CLIENT4, 43_010, ACK);
    let reply_udp4 = Frame::udp4(VIP4, 53, CLIENT4, 43_011);
    let reply6 = Frame::tcp6(VIP6, 80, CLIENT6, 43_012, ACK);
    let reply_other = Frame::tcp4(Ipv4Addr::new(198, 18, 0, 99), 80, CLIENT4, 43_013, ACK);
    let client_side = |f: &Frame, listener| {
        let q = flow_of(f);
        let flow = FlowTuple {
            src: q.dst,
            dst: q.src,
            src_port: q.dst_port,
            dst_port: q.src_port,
            protocol: q.protocol,
            pad: [0; 3],
        };
        Expect::Forward { listener, flow }
    };
    let mut full = tcp(PSH | ACK);
    full.payload = vec![1; 1400];
    let rows: Vec<(&str, Frame, Expect, Counter)> = vec![
        (
            "tcp syn+ack to the vip with no flow is stray",
            tcp(SYN | ACK),
            Expect::Drop,
            Counter::GuardStray,
        ),
        (
            "tcp fin to the vip is forwarded",
            tcp(FIN | ACK),
            web(&tcp(FIN | ACK)),
            Counter::ForwardDsr,
        ),
        (
            "tcp rst to the vip of a recorded flow (the fin's) is forwarded",
            tcp(RST),
            web(&tcp(RST)),
            Counter::ForwardDsr,
        ),
        (
            "tcp psh+ack with a full payload is forwarded",
            full.clone(),
            web(&full),
            Counter::ForwardDsr,
        ),
        (
            "tcp with no flags is dropped by the guard",
            tcp(0),
            Expect::Drop,
            Counter::GuardBadFlags,
        ),
        (
            "tcp psh alone is forwarded",
            tcp(PSH),
            web(&tcp(PSH)),
            Counter::ForwardDsr,
        ),
        (
            "empty udp datagram to the vip",
            empty_udp.clone(),
            Expect::Forward {
                listener: 1,
                flow: flow_of(&empty_udp),
            },
            Counter::ForwardDsr,
        ),
        (
            "vlan-tagged udp over ipv6",
            tagged6.clone(),
            Expect::Forward {
                listener: 3,
                flow: flow_of(&tagged6),
            },
            Counter::Vlan,
        ),
        (
            "ipv6 hop-by-hop header before tcp is passed",
            hop_by_hop,
            Expect::Pass,
            Counter::ParseUnsupported,
        ),
        (
            "icmp frag-needed quoting tcp goes to the flow's backend",
            icmp(false, 3, 4, &reply4, 0),
            client_side(&reply4, 0),
            Counter::IcmpTooBig,
        ),
        (
            "icmp frag-needed quoting udp goes to the flow's backend",
            icmp(false, 3, 4, &reply_udp4, 0),
            client_side(&reply_udp4, 1),
            Counter::IcmpTooBig,
        ),
        (
            "icmpv6 packet-too-big goes to the flow's backend",
            icmp(true, 2, 0, &reply6, 0),
            client_side(&reply6, 2),
            Counter::IcmpTooBig,
        ),
        (
            "icmp port-unreachable is not balanced",
            icmp(false, 3, 3, &reply4, 0),
            Expect::Pass,
            Counter::ParseOtherL4,
        ),
        (
            "icmp time-exceeded is not balanced",
            icmp(false, 11, 0, &reply4, 0),
            Expect::Pass,
            Counter::ParseOtherL4,
        ),
        (
            "icmpv6 destination-unreachable is not balanced",
            icmp(true, 1, 4, &reply6, 0),
            Expect::Pass,
            Counter::ParseOtherL4,
        ),
        (
            "frag-needed quoting a flow of no vip is passed",
            icmp(false, 3, 4, &reply_other, 0),
            Expect::Pass,
            Counter::ParseOtherL4,
        ),
        (
            "frag-needed with the quoted ports cut off is passed",
            icmp(false, 3, 4, &reply4, 6),
            Expect::Pass,
            Counter::ParseTruncated,
        ),
        (
            "packet-too-big with the quoted ports cut off is passed",
            icmp(true, 2, 0, &reply6, 6),
            Expect::Pass,
            Counter::ParseTruncated,
        ),
    ];
    for (what, frame, expect, counter) in rows {
        let before = counters(&lb.prog);
        let bytes = frame.bytes();
        let (verdict, out) = lb
            .prog
            .run(&bytes)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        match expect {
            Expect::Forward { listener, flow } => {
                assert_eq!(verdict, Verdict::Tx, "{what}");
                let want: IpAddr = proxy_pick(&lb.config, listener, &flow);
                assert_eq!(out[..6], mac_of(want), "{what}: expected backend {want}");
                assert_eq!(out[12..], bytes[12..], "{what}: only the MACs may change");
            }
            Expect::Drop => assert_eq!(verdict, Verdict::Drop, "{what}"),
            Expect::Pass => {
                assert_eq!(verdict, Verdict::Pass, "{what}");
                assert_eq!(out, bytes, "{what}");
                let after = counters(&lb.prog);
                for c in [Counter::ForwardDsr, Counter::IcmpTooBig, Counter::FlowNew] {
                    assert_eq!(
                        after[c as usize],
                        before[c as usize],
                        "{what}: {} moved",
                        c.name()
                    );
                }
            }
        }
        let after = counters(&lb.prog);
        assert_eq!(
            after[counter as usize],
            before[counter as usize] + 1,
            "{what}: counter {}",
            counter.name()
        );
    }
}
