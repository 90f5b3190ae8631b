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
