//! The benchmark harness (`bench_restore`): whatever frame a run starts
//! from (a repeat starts from the previous run's output), the program under
//! test sees the stored frame, so repeated IP-in-IP runs measure one
//! encapsulation each.

use super::super::{
    Entry, Sizes, Verdict, XdpProgram,
    packet::{ACK, Frame},
    tables::BackendIds,
    testkit::{CLIENT4, VIP4, setup, tables},
};
use crate::config;

#[test]
fn the_harness_restores_the_frame_before_the_program_runs() {
    let frame = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK).bytes();
    let plain = setup("ipip");
    let (verdict, once) = plain.prog.run(&frame).expect("plain run");
    assert_eq!(verdict, Verdict::Tx);
    assert_eq!(once.len(), frame.len() + 20, "one outer IPv4 header");

    let config =
        config::parse(&super::super::testkit::yaml("ipip", [100; 3]), "t.yaml").expect("config");
    let t = tables(&config, &mut BackendIds::default());
    let mut harnessed =
        XdpProgram::load_restoring(Sizes::for_tables(&t, 4096), Entry::Balancer, &frame)
            .expect("load behind the harness");
    harnessed.apply(None, &t).expect("write");
    // What a second repeat would start from: the first run's output.
    for start in [frame.clone(), once.clone(), vec![0u8; 90]] {
        let (verdict, out) = harnessed.run(&start).expect("harnessed run");
        assert_eq!(verdict, Verdict::Tx);
        assert_eq!(out, once, "from a {}-byte start", start.len());
    }
    // The yardstick behind the harness hands the stored frame back as is.
    let bare = XdpProgram::load_restoring(Sizes::MINIMAL, Entry::BareTx, &frame).expect("bare");
    assert_eq!(
        bare.run(&once).expect("bare run"),
        (Verdict::Tx, frame.clone())
    );
    // A frame longer than the harness holds is refused at load.
    assert!(XdpProgram::load_restoring(Sizes::MINIMAL, Entry::BareTx, &[0; 200]).is_err());
}

/// The walking harness (`bench_walk`): repeated runs of one frame reach the
/// program as the walk's flows in turn, each placed once and then found in
/// the flow table, as the benchmark's cost curve needs.
#[test]
fn the_walk_spreads_repeated_runs_over_its_flows() {
    use balancer_common::{Counter, bench::BenchWalk};

    let config =
        config::parse(&super::super::testkit::yaml("dsr", [100; 3]), "t.yaml").expect("config");
    let t = tables(&config, &mut BackendIds::default());
    let mut walking = XdpProgram::load_walking(Sizes::for_tables(&t, 4096), Entry::Balancer, 5)
        .expect("load behind the walk");
    walking.apply(None, &t).expect("write");
    let frame = Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK).bytes();
    for _ in 0..12 {
        assert_eq!(walking.run(&frame).expect("run").0, Verdict::Tx);
    }
    let c = walking.counters().expect("counters");
    assert_eq!(c[Counter::FlowNew as usize], 5, "each flow placed once");
    assert_eq!(c[Counter::FlowHit as usize], 7, "and found after");
    for i in 0..5 {
        let (addr, port) = BenchWalk::source(i);
        let f = Frame::tcp4(addr.into(), port, VIP4, 80, ACK);
        let key = super::super::testkit::flow_of(&f);
        assert!(walking.flow(&key).expect("read").is_some(), "flow {i}");
    }
    // The frame the caller gave is not one of the walk's flows.
    let own = super::super::testkit::flow_of(&Frame::tcp4(CLIENT4, 40_000, VIP4, 80, ACK));
    assert_eq!(walking.flow(&own).expect("read"), None);
}
