//! The control loop's unit tests: events in, pools and states out.

use std::{future::Future as _, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use balancer_common::FlowTuple;

use super::{Control, Event};
use crate::{
    config,
    runtime::{PoolState, state::State},
};

fn setup(passive: bool) -> (Control, Arc<super::LivePool>) {
    let yaml = format!(
        "version: 1
listeners:
  - {{ name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }}
pools:
  - name: web
    algorithm: maglev
    health: {{ kind: tcp, rise: 2, fall: 2, passive: {passive} }}
    backends: [{{ address: 127.0.0.1:9001 }}, {{ address: 127.0.0.1:9002 }}]
"
    );
    control(&yaml)
}

/// A control loop over the one pool of `yaml`.
fn control(yaml: &str) -> (Control, Arc<super::LivePool>) {
    let config = Arc::new(config::parse(yaml, "t.yaml").expect("config"));
    let pool = Arc::new(ArcSwap::from_pointee(PoolState::new(&config.pools[0])));
    (Control::new(config, vec![pool.clone()], None), pool)
}

fn check(backend: usize, ok: bool) -> Event {
    Event::Check {
        generation: 0,
        pool: 0,
        backend,
        outcome: if ok {
            Ok(Duration::from_millis(1))
        } else {
            Err("connect: refused".into())
        },
    }
}

/// The backends new flows may reach, over many flows.
fn reachable(pool: &super::LivePool) -> Vec<usize> {
    let p = pool.load();
    let mut seen: Vec<usize> = (0..200u16)
        .filter_map(|port| {
            let flow = FlowTuple {
                src: FlowTuple::v4_mapped([198, 18, 0, 1]),
                dst: FlowTuple::v4_mapped([127, 0, 0, 1]),
                src_port: port,
                dst_port: 8080,
                protocol: 6,
                pad: [0; 3],
            };
            p.pick(&flow, &[])
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

#[test]
fn a_backend_leaves_after_fall_failures_and_returns_after_rise_passes() {
    let (mut c, pool) = setup(true);
    assert_eq!(reachable(&pool), [0, 1]);
    c.handle(check(1, false));
    assert_eq!(c.status()[0][1].state(), State::Falling);
    assert_eq!(reachable(&pool), [0, 1], "falling still serves");
    c.handle(check(1, false));
    assert_eq!(c.status()[0][1].state(), State::Down);
    assert_eq!(reachable(&pool), [0]);
    let b = &pool.load().backends[1];
    assert_eq!(b.weight, 0);
    assert_eq!(
        b.stats
            .state_changes
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        b.stats
            .checks_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    c.handle(check(1, true));
    assert_eq!(c.status()[0][1].state(), State::Rising);
    assert_eq!(reachable(&pool), [0]);
    c.handle(check(1, true));
    assert_eq!(reachable(&pool), [0, 1]);
    assert_eq!(pool.load().backends[1].weight, 100);
}

#[test]
fn proxy_failures_count_toward_fall_only_when_passive() {
    let passive = |backend| Event::Passive {
        generation: 0,
        pool: 0,
        backend,
        error: "connect: refused".into(),
    };
    let (mut on, pool) = setup(true);
    on.handle(passive(0));
    on.handle(passive(0));
    assert_eq!(on.status()[0][0].state(), State::Down);
    assert_eq!(reachable(&pool), [1]);
    let (mut off, pool) = setup(false);
    off.handle(passive(0));
    off.handle(passive(0));
    assert_eq!(off.status()[0][0].state(), State::Up);
    assert_eq!(reachable(&pool), [0, 1]);
}

#[test]
fn operators_drain_disable_enable_and_reweigh() {
    use super::{Action, AdminError};
    let (mut c, pool) = setup(true);
    let b1 = "127.0.0.1:9002".parse().expect("addr");
    assert_eq!(c.admin("web", b1, Action::Drain), Ok(State::Draining));
    assert_eq!(reachable(&pool), [0]);
    assert_eq!(c.admin("web", b1, Action::Enable), Ok(State::Up));
    assert_eq!(reachable(&pool), [0, 1]);
    assert_eq!(c.admin("web", b1, Action::Disable), Ok(State::Disabled));
    assert_eq!(reachable(&pool), [0]);
    c.admin("web", b1, Action::Enable).expect("enable");
    assert_eq!(c.admin("web", b1, Action::Weight(7)), Ok(State::Up));
    assert_eq!(pool.load().backends[1].weight, 7);
    assert_eq!(
        c.admin("web", b1, Action::Weight(10_001)),
        Err(AdminError::BadWeight(10_001))
    );
    assert_eq!(
        c.admin("nope", b1, Action::Drain),
        Err(AdminError::NoPool("nope".into()))
    );
    let other = "127.0.0.1:9".parse().expect("addr");
    assert!(matches!(
        c.admin("web", other, Action::Drain),
        Err(AdminError::NoBackend { .. })
    ));
    // A drained backend that fails its checks goes down, and comes
    // back drained.
    c.admin("web", b1, Action::Drain).expect("drain");
    c.handle(check(1, false));
    c.handle(check(1, false));
    assert_eq!(c.status()[0][1].state(), State::Down);
    c.handle(check(1, true));
    c.handle(check(1, true));
    assert_eq!(c.status()[0][1].state(), State::Draining);
}

/// With `slow_start`, a backend that comes back up gets a small weight
/// that grows linearly to its full weight over the configured time.
#[test]
fn slow_start_ramps_a_returning_backends_weight() {
    let yaml = "version: 1
listeners:
  - { name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }
pools:
  - name: web
    algorithm: round_robin
    slow_start: 10s
    health: { kind: tcp, rise: 1, fall: 1 }
    backends: [{ address: 127.0.0.1:9001, weight: 200 }, { address: 127.0.0.1:9002, weight: 200 }]
";
    let (mut c, pool) = control(yaml);
    c.handle(check(1, false));
    assert_eq!(pool.load().backends[1].weight, 0);
    let back = std::time::Instant::now();
    c.handle(check(1, true));
    assert_eq!(
        pool.load().backends[1].weight,
        1,
        "starts at the least weight"
    );
    c.tick(back + Duration::from_secs(5));
    let half = pool.load().backends[1].weight;
    assert!((95..=105).contains(&half), "about half way: {half}");
    c.tick(back + Duration::from_secs(11));
    assert_eq!(pool.load().backends[1].weight, 200);
    assert_eq!(
        pool.load().backends[0].weight,
        200,
        "the other never ramped"
    );
}

/// A drain with `drain_timeout`: connections carry on until it passes,
/// then the backend is disabled and its proxied connections are told to
/// close.
#[test]
fn a_drain_timeout_disables_the_backend_and_cuts_its_connections() {
    use super::Action;
    let yaml = "version: 1
listeners:
  - { name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }
pools:
  - name: web
    drain_timeout: 2s
    backends: [{ address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 }]
";
    let (mut c, pool) = control(yaml);
    let b1 = "127.0.0.1:9002".parse().expect("addr");
    let start = std::time::Instant::now();
    c.admin("web", b1, Action::Drain).expect("drain");
    let stats = pool.load().backends[1].stats.clone();
    let cut = stats.cut.notified();
    tokio::pin!(cut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(cut.as_mut().poll(&mut cx).is_pending());
    c.tick(start + Duration::from_secs(1));
    assert_eq!(c.status()[0][1].state(), State::Draining);
    assert!(
        cut.as_mut().poll(&mut cx).is_pending(),
        "cut before the timeout"
    );
    c.tick(start + Duration::from_secs(3));
    assert_eq!(c.status()[0][1].state(), State::Disabled);
    assert!(
        cut.as_mut().poll(&mut cx).is_ready(),
        "connections not told to close"
    );
    assert_eq!(reachable(&pool), [0]);
}

#[test]
fn events_for_unknown_pools_or_backends_change_nothing() {
    let (mut c, pool) = setup(true);
    c.handle(Event::Check {
        generation: 0,
        pool: 7,
        backend: 0,
        outcome: Err("x".into()),
    });
    c.handle(check(9, false));
    assert_eq!(reachable(&pool), [0, 1]);
}

#[test]
fn guard_list_changes_without_an_xdp_plane_are_refused_and_change_nothing() {
    use crate::runtime::guard_lists::{Added, List, ListChange, ListError, Scope};
    let (mut c, _) = setup(false);
    let add = ListChange::Add(Added {
        scope: Scope::Global,
        list: List::Deny,
        cidr: crate::config::values::cidr("198.18.5.0/24").expect("cidr"),
    });
    assert_eq!(c.guard(&add), Err(ListError::NoXdp));
    let shown = c.guard(&ListChange::Show).expect("show");
    assert!(!shown.changed && shown.lists.global.deny.added.is_empty());
}
