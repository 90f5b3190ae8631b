//! Spread and stability tests for every algorithm: shares within tolerance of
//! the weights, draining honoured, skips honoured, Maglev disruption bounded.

use std::{
    cell::RefCell,
    net::{Ipv4Addr, SocketAddr},
};

use balancer_common::{FlowTuple, flow_hash, hash::addr_hash};

use super::{MaglevTable, Member, Request, build};
use crate::config::model::Algorithm;

const ALL: [Algorithm; 6] = [
    Algorithm::RoundRobin,
    Algorithm::WeightedRoundRobin,
    Algorithm::LeastConnections,
    Algorithm::SourceHash,
    Algorithm::Maglev,
    Algorithm::TwoChoices,
];

fn members(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Member {
            address: SocketAddr::from((Ipv4Addr::new(198, 18, 1, 10 + i as u8), 80)),
            weight,
        })
        .collect()
}

fn flow(i: u32) -> FlowTuple {
    let b = i.to_be_bytes();
    FlowTuple {
        src: FlowTuple::v4_mapped([198, 0x12 | (b[1] & 1), b[2], b[3]]),
        dst: FlowTuple::v4_mapped([198, 18, 0, 10]),
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 80,
        protocol: 6,
        pad: [0; 3],
    }
}

/// Picks `n` flows and returns counts per backend. Load-aware algorithms see
/// every pick as a connection that stays open, so they must spread by weight.
fn spread(algorithm: Algorithm, weights: &[u32], n: u32) -> Vec<u64> {
    let ms = members(weights);
    let sel = build(algorithm, &ms, 65_537);
    let counts = RefCell::new(vec![0u64; ms.len()]);
    for i in 0..n {
        let f = flow(i);
        let pick = {
            let c = counts.borrow();
            let load = |b: usize| c[b];
            sel.select(&Request {
                flow_hash: flow_hash(&f, 0),
                source_hash: addr_hash(&f.src, 0),
                skip: &|_| false,
                load: &load,
            })
        }
        .expect("some backend");
        counts.borrow_mut()[pick] += 1;
    }
    counts.into_inner()
}

#[test]
fn every_algorithm_spreads_by_weight() {
    let weight_sets: [&[u32]; 4] = [
        &[100, 100, 100],
        &[100, 50, 25, 25],
        &[1, 3],
        &[100, 100, 100, 100, 100, 100, 100, 100],
    ];
    let n = 60_000;
    for algorithm in ALL {
        for weights in weight_sets {
            let counts = spread(algorithm, weights, n);
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            for (i, &c) in counts.iter().enumerate() {
                let expected = if algorithm == Algorithm::RoundRobin {
                    f64::from(n) / weights.len() as f64
                } else {
                    f64::from(n) * f64::from(weights[i]) / total as f64
                };
                // Hashing algorithms see 60k random-ish flows: allow 5% of
                // the expected share plus sampling noise; the counters-based
                // ones are near exact.
                let tolerance = expected * 0.05 + 3.0 * expected.sqrt();
                assert!(
                    (c as f64 - expected).abs() <= tolerance,
                    "{algorithm} weights {weights:?}: backend {i} got {c}, expected {expected:.0} ± {tolerance:.0} ({counts:?})"
                );
            }
        }
    }
}

#[test]
fn weight_zero_is_never_chosen() {
    for algorithm in ALL {
        let counts = spread(algorithm, &[100, 0, 100], 3_000);
        assert_eq!(
            counts[1], 0,
            "{algorithm} chose a draining backend: {counts:?}"
        );
    }
}

#[test]
fn skipped_backends_are_passed_over_and_none_when_all_skipped() {
    for algorithm in ALL {
        let ms = members(&[100, 100, 100]);
        let sel = build(algorithm, &ms, 251);
        for i in 0..500 {
            let r = Request {
                flow_hash: flow_hash(&flow(i), 0),
                source_hash: i,
                skip: &|b| b != 2,
                load: &|_| 0,
            };
            assert_eq!(sel.select(&r), Some(2), "{algorithm}");
        }
        let none = Request {
            flow_hash: 1,
            source_hash: 1,
            skip: &|_| true,
            load: &|_| 0,
        };
        assert_eq!(sel.select(&none), None, "{algorithm}");
    }
}

#[test]
fn hashing_algorithms_are_deterministic_per_flow() {
    for algorithm in [Algorithm::Maglev, Algorithm::SourceHash] {
        let a = build(algorithm, &members(&[100, 100, 100]), 65_537);
        let b = build(algorithm, &members(&[100, 100, 100]), 65_537);
        for i in 0..1000 {
            let f = flow(i);
            let r = Request {
                flow_hash: flow_hash(&f, 0),
                source_hash: addr_hash(&f.src, 0),
                skip: &|_| false,
                load: &|_| 0,
            };
            assert_eq!(a.select(&r), b.select(&r), "{algorithm}");
        }
    }
}

/// Removing one of N backends must move (almost) only the keys that were on
/// it: at most 2% of the keys on the survivors may change backend.
#[test]
fn maglev_removal_moves_few_surviving_keys() {
    for n in [3usize, 5, 10, 30] {
        let all = members(&vec![100; n]);
        let before = MaglevTable::build(&all, 65_537);
        let removed = n / 2;
        let mut rest = all.clone();
        rest.remove(removed);
        let after = MaglevTable::build(&rest, 65_537);
        let (mut survivors, mut moved) = (0u32, 0u32);
        for i in 0..100_000u32 {
            let h = flow_hash(&flow(i), 0);
            let old = before.lookup(h).expect("table");
            if old == removed {
                continue;
            }
            survivors += 1;
            let new = after.lookup(h).expect("table");
            // Indices after the removed one shift down by one.
            let new_as_old = if new >= removed { new + 1 } else { new };
            if new_as_old != old {
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(survivors);
        assert!(
            share <= 0.02,
            "n={n}: {moved} of {survivors} surviving keys moved ({:.2}%)",
            share * 100.0
        );
    }
}

/// Every host must build the same table from the same backends, however
/// its file lists them: slot by slot, the same backend (compared by
/// address, since indexes follow the list), for every order of five
/// weighted backends.
#[test]
fn maglev_table_is_the_same_for_every_order_of_the_backends() {
    let weights = [100, 100, 50, 100, 25];
    let base = members(&weights);
    let by_address = |ms: &[Member]| -> Vec<SocketAddr> {
        let t = MaglevTable::build(ms, 65_537);
        t.slots().iter().map(|&i| ms[i as usize].address).collect()
    };
    let want = by_address(&base);
    let mut order: Vec<usize> = (0..base.len()).collect();
    let mut tried = 0;
    // Heap's algorithm: all 120 orders.
    let mut c = vec![0usize; order.len()];
    let mut check = |order: &[usize]| {
        let ms: Vec<Member> = order.iter().map(|&i| base[i]).collect();
        assert_eq!(by_address(&ms), want, "order {order:?}");
        tried += 1;
    };
    check(&order);
    let mut i = 0;
    while i < order.len() {
        if c[i] < i {
            let j = if i % 2 == 0 { 0 } else { c[i] };
            order.swap(j, i);
            check(&order);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    assert_eq!(tried, 120);
}

#[test]
fn maglev_table_is_pinned() {
    // The table for a fixed pool must never change between releases: every
    // balancer host and the XDP path must agree. If this fails, flows would
    // reshuffle on upgrade.
    let t = MaglevTable::build(&members(&[100, 100, 50]), 13);
    assert_eq!(t.slots(), PINNED_13);
}

const PINNED_13: &[u32] = &[0, 1, 0, 1, 0, 0, 0, 1, 1, 2, 1, 0, 2];

#[test]
fn smooth_wrr_interleaves() {
    let ms = members(&[5, 1, 1]);
    let sel = build(Algorithm::WeightedRoundRobin, &ms, 251);
    let picks: Vec<usize> = (0..7)
        .map(|_| {
            sel.select(&Request {
                flow_hash: 0,
                source_hash: 0,
                skip: &|_| false,
                load: &|_| 0,
            })
            .unwrap()
        })
        .collect();
    // nginx's documented sequence for weights 5,1,1: a a b a c a a.
    assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
}
