//! Decapsulator packet tests: tunnels to a local endpoint are unwrapped to
//! exactly the inner packet; everything else passes untouched; a balancer ->
//! decapsulator round trip restores the client's packet byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use balancer_common::Counter;

use crate::config;
use crate::dataplane::xdp::{
    Sizes, Verdict, XdpProgram,
    packet::{Frame, LB_MAC, SYN, checksum},
    tables::{BackendIds, Hop, Tables},
    testkit::egress,
};

const ENDPOINT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
const ENDPOINT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x11);
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1);

fn decap() -> XdpProgram {
    XdpProgram::load_decap(&[IpAddr::V4(ENDPOINT4), IpAddr::V6(ENDPOINT6)]).expect("load decap")
}

/// `inner` (a whole frame) wrapped in an outer IPv4 header to `dst`.
fn ipip4(inner: &[u8], dst: Ipv4Addr) -> Vec<u8> {
    let ip = &inner[14..];
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&(ip.len() as u16 + 20).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0, 64, 4, 0, 0, 198, 18, 0, 2]);
    h.extend_from_slice(&dst.octets());
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = inner[..14].to_vec();
    f.extend_from_slice(&h);
    f.extend_from_slice(ip);
    f
}

/// `inner` (a whole IPv6 frame) wrapped in an outer IPv6 header to `dst`.
fn ip6ip6(inner: &[u8], dst: Ipv6Addr) -> Vec<u8> {
    let ip = &inner[14..];
    let mut f = inner[..14].to_vec();
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(ip.len() as u16).to_be_bytes());
    f.extend_from_slice(&[41, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(ip);
    f
}

#[test]
fn tunnels_to_local_endpoints_are_unwrapped_exactly() {
    let prog = decap();
    let inner4 = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN).bytes();
    let inner6 = Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN).bytes();
    for (what, frame, want) in [
        ("ipv4 in ipv4", ipip4(&inner4, ENDPOINT4), inner4.clone()),
        ("ipv6 in ipv6", ip6ip6(&inner6, ENDPOINT6), inner6.clone()),
    ] {
        let (verdict, out) = prog.run(&frame).expect("run");
        assert_eq!(verdict, Verdict::Pass, "{what}");
        assert_eq!(out, want, "{what}");
    }
    assert_eq!(
        prog.counters().expect("counters")[Counter::Decapsulated as usize],
        2
    );
}

#[test]
fn everything_else_passes_untouched() {
    let prog = decap();
    let inner4 = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN).bytes();
    let mut v6_inside_v4 = ipip4(&inner4, ENDPOINT4);
    v6_inside_v4[34] = 0x60;
    for (what, frame) in [
        (
            "tunnel to another host",
            ipip4(&inner4, Ipv4Addr::new(198, 18, 1, 99)),
        ),
        ("plain tcp", inner4.clone()),
        ("ipv6 inside ipv4", v6_inside_v4),
        (
            "ipv6 tunnel to another host",
            ip6ip6(&Frame::tcp6(CLIENT6, 1, VIP6, 80, SYN).bytes(), VIP6),
        ),
    ] {
        let (verdict, out) = prog.run(&frame).expect("run");
        assert_eq!(verdict, Verdict::Pass, "{what}");
        assert_eq!(out, frame, "{what}");
    }
    let c = prog.counters().expect("counters");
    assert_eq!(
        (
            c[Counter::NotTunnel as usize],
            c[Counter::Decapsulated as usize]
        ),
        (4, 0)
    );
}

#[test]
fn truncated_tunnel_frames_never_abort() {
    let prog = decap();
    let frame = ipip4(&Frame::udp4(CLIENT4, 40_000, VIP4, 53).bytes(), ENDPOINT4);
    for len in 14..frame.len() {
        let (verdict, _) = prog.run(&frame[..len]).expect("run");
        assert_eq!(verdict, Verdict::Pass, "cut to {len}");
    }
}

/// What the balancer sends in IP-in-IP mode, the decapsulator turns back
/// into the client's packet, byte for byte.
#[test]
fn balancer_then_decap_restores_the_clients_packet() {
    let yaml = "version: 1
listeners:
  - { name: web, address: 198.18.0.10:80, protocol: tcp, mode: xdp, pool: web }
  - { name: web6, address: \"[fd00::10]:80\", protocol: tcp, mode: xdp, pool: web6 }
pools:
  - { name: web, algorithm: maglev, backends: [{ address: 198.18.1.11:80 }] }
  - { name: web6, algorithm: maglev, backends: [{ address: \"[fd00:1::11]:80\" }] }
xdp: { interface: eth0, forwarding: ipip }
";
    let config = config::parse(yaml, "t.yaml").expect("config");
    let listeners: Vec<_> = config.listeners.iter().collect();
    let tables = Tables::build(
        &listeners,
        &config.pools,
        &egress(&config),
        &mut BackendIds::default(),
        &|_| {
            Some(Hop {
                mac: [2, 0, 0, 0, 0, 9],
                src_mac: LB_MAC,
                tx_port: 0,
            })
        },
    )
    .expect("tables");
    let mut lb = XdpProgram::load(Sizes::for_tables(&tables, 64)).expect("load");
    lb.apply(None, &tables).expect("apply");
    let backend = decap();
    for client in [
        Frame::tcp4(CLIENT4, 40_000, VIP4, 80, SYN).bytes(),
        Frame::tcp6(CLIENT6, 40_000, VIP6, 80, SYN).bytes(),
    ] {
        let (verdict, tunnelled) = lb.run(&client).expect("balancer");
        assert_eq!(verdict, Verdict::Tx);
        let (verdict, delivered) = backend.run(&tunnelled).expect("decap");
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            delivered[14..],
            client[14..],
            "inner packet changed on the way"
        );
        assert_eq!(
            delivered[..12],
            tunnelled[..12],
            "MACs are the tunnel frame's"
        );
    }
}
