//! Backend states in the kernel plane: a backend that is down loses its
//! entry, so its established flows are placed again by the ring; a drained
//! one keeps its established flows but gets no new ones; both planes still
//! agree on every new flow.

use std::net::{IpAddr, Ipv4Addr};

use crate::dataplane::xdp::{
    packet::{ACK, Frame},
    tables::Tables,
    testkit::{CLIENT4, VIP4, egress, flow_of, hop_of, mac_of, setup},
};
use crate::runtime::{
    PoolState,
    state::{Admin, Health, Status},
};

fn web2() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12))
}

/// Moves the program to `web`'s backend 1 (198.18.1.12) in `s`; returns the
/// proxy plane's pool in the same state.
fn set_web2(lb: &mut crate::dataplane::xdp::testkit::Lb, s: Status) -> PoolState {
    let listeners: Vec<_> = lb.config.listeners.iter().collect();
    let status_of = |p: usize, b: usize| {
        if p == 0 && b == 1 {
            s
        } else {
            Status::default()
        }
    };
    let new = Tables::build_with(
        &listeners,
        &lb.config.pools,
        &status_of,
        &egress(&lb.config),
        &mut lb.ids,
        &hop_of,
    )
    .expect("tables");
    lb.prog.apply(Some(&lb.tables), &new).expect("apply");
    lb.tables = new;
    let pool = &lb.config.pools[0];
    let states: Vec<Status> = (0..pool.backends.len()).map(|b| status_of(0, b)).collect();
    let counters: Vec<_> = pool
        .backends
        .iter()
        .map(|_| std::sync::Arc::default())
        .collect();
    PoolState::build(pool, &states, &counters)
}

fn syns(ports: std::ops::Range<u16>) -> Vec<Frame> {
    ports
        .map(|p| Frame::tcp4(CLIENT4, p, VIP4, 80, ACK))
        .collect()
}

fn mac(lb: &crate::dataplane::xdp::testkit::Lb, f: &Frame) -> [u8; 6] {
    lb.prog.run(&f.bytes()).expect("run").1[..6]
        .try_into()
        .expect("mac")
}

fn ack(f: &Frame) -> Frame {
    Frame::tcp4(CLIENT4, flow_of(f).src_port, VIP4, 80, ACK)
}

#[test]
fn a_down_backends_flows_are_placed_again_and_it_gets_no_new_ones() {
    let mut lb = setup("dsr");
    let frames = syns(21_000..21_300);
    let before: Vec<[u8; 6]> = frames.iter().map(|f| mac(&lb, f)).collect();
    assert!(before.contains(&mac_of(web2())));
    let down = Status {
        health: Health::Down,
        admin: Admin::Enabled,
        ..Status::default()
    };
    let proxy = set_web2(&mut lb, down);
    for (f, old) in frames.iter().zip(&before) {
        let now = mac(&lb, &ack(f));
        if *old == mac_of(web2()) {
            let i = proxy.pick(&flow_of(f), &[]).expect("a backend");
            assert_eq!(
                now,
                mac_of(proxy.backends[i].address.ip()),
                "re-placed as the proxy would"
            );
        } else {
            assert_eq!(now, *old, "a flow on a healthy backend moved");
        }
    }
    let fresh = syns(60_000..60_200);
    assert!(fresh.iter().all(|f| mac(&lb, f) != mac_of(web2())));
    // Back up: it takes new flows again, under the same id.
    let ids_before = lb.ids.allocated();
    set_web2(&mut lb, Status::default());
    assert_eq!(
        lb.ids.allocated(),
        ids_before,
        "a flapping backend uses no new ids"
    );
    assert!(
        syns(61_000..61_200)
            .iter()
            .any(|f| mac(&lb, f) == mac_of(web2()))
    );
}

#[test]
fn a_drained_backend_keeps_its_flows_and_gets_no_new_ones() {
    let mut lb = setup("dsr");
    let frames = syns(22_000..22_300);
    let before: Vec<[u8; 6]> = frames.iter().map(|f| mac(&lb, f)).collect();
    let draining = Status {
        health: Health::Up,
        admin: Admin::Draining,
        ..Status::default()
    };
    let proxy = set_web2(&mut lb, draining);
    for (f, old) in frames.iter().zip(&before) {
        assert_eq!(mac(&lb, &ack(f)), *old, "an established flow moved");
    }
    for f in &syns(62_000..62_200) {
        let now = mac(&lb, f);
        assert_ne!(now, mac_of(web2()));
        let i = proxy.pick(&flow_of(f), &[]).expect("a backend");
        assert_eq!(
            now,
            mac_of(proxy.backends[i].address.ip()),
            "planes disagree"
        );
    }
}
