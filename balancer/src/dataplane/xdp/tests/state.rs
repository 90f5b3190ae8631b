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
    set_backends(lb, &[(0, 1)], s)
}

/// Moves the program to `s` for the backends `which` (pool, backend), all
/// others in the default state; returns the proxy plane's first pool in
/// the same state.
fn set_backends(
    lb: &mut crate::dataplane::xdp::testkit::Lb,
    which: &[(usize, usize)],
    s: Status,
) -> PoolState {
    let listeners: Vec<_> = lb.config.listeners.iter().collect();
    let status_of = |p: usize, b: usize| {
        if which.contains(&(p, b)) {
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

/// UDP has no end of flow: a UDP flow idle for 30 s is placed afresh by
/// the ring, so a drained backend loses its idle UDP clients, while one
/// that keeps sending stays. TCP flows are never aged out this way.
#[test]
fn an_idle_udp_flow_is_placed_again_and_a_live_one_stays() {
    let mut lb = setup("dsr");
    let dns2 = mac_of(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12)));
    let udp = |port| Frame::udp4(CLIENT4, port, VIP4, 53);
    let on_dns2: Vec<Frame> = (41_000..41_100)
        .map(udp)
        .filter(|f| mac(&lb, f) == dns2)
        .collect();
    assert!(
        on_dns2.len() > 10,
        "{} flows on the second backend",
        on_dns2.len()
    );
    let tcp: Vec<Frame> = syns(23_000..23_100)
        .into_iter()
        .filter(|f| mac(&lb, f) == mac_of(web2()))
        .collect();
    assert!(!tcp.is_empty());
    let draining = Status {
        health: Health::Up,
        admin: Admin::Draining,
        ..Status::default()
    };
    set_backends(&mut lb, &[(0, 1), (1, 1)], draining);
    let (idle, live) = on_dns2.split_at(on_dns2.len() / 2);
    for f in idle {
        lb.prog
            .age_flow(&flow_of(f), std::time::Duration::from_secs(31))
            .expect("age");
    }
    for f in live {
        // 29 s: idle, but not long enough; the packet refreshes it.
        lb.prog
            .age_flow(&flow_of(f), std::time::Duration::from_secs(29))
            .expect("age");
    }
    for f in &tcp {
        lb.prog
            .age_flow(&flow_of(f), std::time::Duration::from_mins(10))
            .expect("age");
        assert_eq!(mac(&lb, &ack(f)), mac_of(web2()), "a TCP flow aged out");
    }
    for f in live {
        assert_eq!(mac(&lb, f), dns2, "a live UDP flow moved");
    }
    for f in idle {
        let before = lb.prog.flow(&flow_of(f)).expect("read");
        assert_ne!(
            mac(&lb, f),
            dns2,
            "an idle UDP flow stayed on the drained backend"
        );
        let after = lb.prog.flow(&flow_of(f)).expect("read");
        assert!(
            after.is_some() && after != before,
            "the re-placed flow is recorded again ({before:?} -> {after:?})"
        );
    }
    // The live ones were refreshed: another 29 s and they still stay.
    for f in live {
        lb.prog
            .age_flow(&flow_of(f), std::time::Duration::from_secs(29))
            .expect("age");
        assert_eq!(mac(&lb, f), dns2, "a refreshed UDP flow moved");
    }
}
