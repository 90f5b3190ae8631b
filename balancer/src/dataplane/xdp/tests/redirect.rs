//! Backends behind another interface than the XDP one: their frames leave
//! by redirect through the device map, with that interface's MAC as source;
//! backends on the XDP interface's own link still go out by `XDP_TX`; and a
//! backend whose interface has left the device map is dropped and counted.

use std::net::{IpAddr, Ipv4Addr};

use balancer_common::Counter;

use crate::config::{self, Config};
use crate::dataplane::xdp::{
    Sizes, Verdict, XdpProgram,
    packet::{Frame, LB_MAC, SYN},
    tables::{BackendIds, Hop, Tables},
    testkit::{CLIENT4, VIP4, counters, egress, flow_of, mac_of, proxy_pick, yaml},
};

/// The other interface's MAC.
const OTHER_MAC: [u8; 6] = [0x02, 0x0e, 0, 0, 0, 2];
/// `lo` exists in every namespace; the test runs never transmit.
const LO: u32 = 1;

fn behind_other() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12))
}

/// The balancer with backend .12 behind another interface, reached through
/// device-map slot `slot`; the map holds slot 1 only.
fn setup(forwarding: &str, slot: u32) -> (XdpProgram, Config) {
    let config = config::parse(&yaml(forwarding, [100, 100, 100]), "t.yaml").expect("config");
    let listeners: Vec<_> = config.listeners.iter().collect();
    let mut egress = egress(&config);
    egress.ports = vec![(1, LO)];
    let hop_of = |ip: IpAddr| {
        let other = ip == behind_other();
        Some(Hop {
            mac: mac_of(ip),
            src_mac: if other { OTHER_MAC } else { LB_MAC },
            tx_port: if other { slot } else { 0 },
        })
    };
    let tables = Tables::build(
        &listeners,
        &config.pools,
        &egress,
        &mut BackendIds::default(),
        &hop_of,
    )
    .expect("tables");
    let mut prog = XdpProgram::load(Sizes::for_tables(&tables, 1024)).expect("load");
    prog.apply(None, &tables).expect("apply");
    (prog, config)
}

/// SYNs to the IPv4 web VIP, split by whether the proxy plane places them
/// on the backend behind the other interface.
fn frames(config: &Config) -> (Vec<Frame>, Vec<Frame>) {
    (41_000..41_100)
        .map(|p| Frame::tcp4(CLIENT4, p, VIP4, 80, SYN))
        .partition(|f| proxy_pick(config, 0, &flow_of(f)) == behind_other())
}

#[test]
fn dsr_redirects_to_a_backend_behind_another_interface() {
    let (prog, config) = setup("dsr", 1);
    let (other, local) = frames(&config);
    assert!(!other.is_empty() && !local.is_empty());
    for f in &other {
        let bytes = f.bytes();
        let (verdict, out) = prog.run(&bytes).expect("run");
        assert_eq!(verdict, Verdict::Redirect);
        let mut want = bytes.clone();
        want[..6].copy_from_slice(&mac_of(behind_other()));
        want[6..12].copy_from_slice(&OTHER_MAC);
        assert_eq!(out, want);
    }
    for f in &local {
        let (verdict, out) = prog.run(&f.bytes()).expect("run");
        assert_eq!(verdict, Verdict::Tx);
        assert_eq!(out[6..12], LB_MAC);
    }
    let c = counters(&prog);
    assert_eq!(c[Counter::VerdictRedirect as usize], other.len() as u64);
    assert_eq!(c[Counter::VerdictTx as usize], local.len() as u64);
    assert_eq!(c[Counter::ForwardDsr as usize], 100);
}

#[test]
fn ipip_redirects_the_tunnelled_frame() {
    let (prog, config) = setup("ipip", 1);
    let (other, _) = frames(&config);
    for f in &other {
        let bytes = f.bytes();
        let (verdict, out) = prog.run(&bytes).expect("run");
        assert_eq!(verdict, Verdict::Redirect);
        assert_eq!(out.len(), bytes.len() + 20);
        assert_eq!(out[6..12], OTHER_MAC);
        assert_eq!(out[14 + 9], 4, "outer protocol IP-in-IP");
        assert_eq!(out[14 + 16..14 + 20], [198, 18, 1, 12], "outer destination");
        assert_eq!(out[34..], bytes[14..], "inner packet unchanged");
    }
    assert_eq!(
        counters(&prog)[Counter::ForwardIpip as usize],
        other.len() as u64
    );
}

#[test]
fn a_backend_whose_interface_left_the_device_map_is_dropped_with_a_reason() {
    let (prog, config) = setup("dsr", 2);
    let (other, _) = frames(&config);
    for f in &other {
        assert_eq!(prog.run(&f.bytes()).expect("run").0, Verdict::Drop);
    }
    let c = counters(&prog);
    assert_eq!(c[Counter::DropNoTxPort as usize], other.len() as u64);
    assert_eq!(c[Counter::VerdictDrop as usize], other.len() as u64);
    assert_eq!(c[Counter::ForwardDsr as usize], 0, "a drop is no forward");
}
