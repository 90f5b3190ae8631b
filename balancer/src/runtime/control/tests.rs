//! The control loop's unit tests: events in, pools and states out.

use std::{future::Future as _, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use balancer_common::FlowTuple;

use super::{Control, Event};
use crate::runtime::plane::{Plane, WriteError};
use crate::{
    config,
    runtime::{
        PoolState,
        failure::{Failure, Step},
        state::State,
    },
};

fn setup(passive: bool) -> (Control, Arc<super::LivePool>) {
    control(&pool_yaml(
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Some(&format!("kind: tcp, rise: 2, fall: 2, passive: {passive}")),
    ))
}

/// The one-pool config of these tests, with `backends` (none: the pool
/// discovers them instead) and `health` (what goes between its braces).
fn pool_yaml(backends: &[&str], health: Option<&str>) -> String {
    let health = health.map_or_else(String::new, |h| format!("    health: {{ {h} }}\n"));
    let list: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ address: {a} }}"))
        .collect();
    let discover = if backends.is_empty() {
        "    discover: { file: /nonexistent/web.yaml }\n"
    } else {
        ""
    };
    format!(
        "version: 1
listeners:
  - {{ name: web, address: 127.0.0.1:8080, protocol: tcp, pool: web }}
pools:
  - name: web
    algorithm: maglev
{health}{discover}    backends: [{}]
",
        list.join(", ")
    )
}

/// A control loop over the one pool of `yaml`.
fn control(yaml: &str) -> (Control, Arc<super::LivePool>) {
    let config = Arc::new(config::parse(yaml, "t.yaml").expect("config"));
    let pool = Arc::new(ArcSwap::from_pointee(PoolState::new(&config.pools[0])));
    (Control::new(config, vec![pool.clone()], Vec::new()), pool)
}

fn check(backend: usize, ok: bool) -> Event {
    Event::Check {
        generation: 0,
        pool: 0,
        backend,
        outcome: if ok {
            Ok(Duration::from_millis(1))
        } else {
            Err(Failure::Refused(Step::Connect))
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
        failure: Failure::Refused(Step::Connect),
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
        outcome: Err(Failure::Reset),
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

/// One write a plane was asked for: which, the global deny list's length,
/// and the backends' states.
type Asked = (&'static str, usize, Vec<State>);

/// A plane that records what it is asked, and refuses when told to.
#[derive(Clone, Default)]
struct Recording {
    /// What it was asked: the write, the global deny list's length, and
    /// the backends' states.
    asked: Arc<std::sync::Mutex<Vec<Asked>>>,
    /// Refuse every write while set.
    refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl Recording {
    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }

    fn refuse(&self, on: bool) {
        self.refuse.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn record(
        &self,
        what: &'static str,
        config: &config::Config,
        status: &[Vec<crate::runtime::state::Status>],
    ) -> Result<(), WriteError> {
        let seen = status.iter().flatten().map(|s| s.state()).collect();
        self.asked
            .lock()
            .expect("lock")
            .push((what, config.guard.deny.len(), seen));
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            Err(format!("the fake refuses the {what}").into())
        } else {
            Ok(())
        }
    }
}

impl Plane for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn guards(&self) -> bool {
        true
    }

    fn reload(
        &mut self,
        config: &config::Config,
        status: &[Vec<crate::runtime::state::Status>],
    ) -> Result<(), WriteError> {
        self.record("reload", config, status)
    }

    fn update(
        &mut self,
        config: &config::Config,
        status: &[Vec<crate::runtime::state::Status>],
    ) -> Result<(), WriteError> {
        self.record("update", config, status)
    }
}

/// A control loop over the pool of `setup(true)` with `planes`.
fn with_planes(planes: &[Recording]) -> (Control, Arc<super::LivePool>) {
    let (c, pool) = setup(true);
    let boxed = planes
        .iter()
        .map(|p| Box::new(p.clone()) as Box<dyn Plane>)
        .collect();
    (Control::new(c.config.clone(), c.pools.clone(), boxed), pool)
}

fn deny(cidr: &str) -> crate::runtime::guard_lists::ListChange {
    use crate::runtime::guard_lists::{Added, List, ListChange, Scope};
    ListChange::Add(Added {
        scope: Scope::Global,
        list: List::Deny,
        cidr: crate::config::values::cidr(cidr).expect("cidr"),
    })
}

#[test]
fn a_guard_list_change_reaches_the_plane_before_it_is_kept() {
    let plane = Recording::default();
    let (mut c, _) = with_planes(std::slice::from_ref(&plane));
    let answer = c.guard(&deny("198.18.5.0/24")).expect("added");
    assert!(answer.changed);
    assert_eq!(answer.lists.global.deny.added.len(), 1);
    assert_eq!(plane.asked(), [("update", 1, vec![State::Up, State::Up])]);
}

#[test]
fn a_guard_list_change_the_plane_refuses_changes_nothing() {
    use crate::runtime::guard_lists::{ListChange, ListError};
    let plane = Recording::default();
    let (mut c, _) = with_planes(std::slice::from_ref(&plane));
    plane.refuse(true);
    let refused = c.guard(&deny("198.18.5.0/24"));
    assert!(
        matches!(&refused, Err(ListError::Write(why)) if why.contains("fake refuses")),
        "{refused:?}"
    );
    assert_eq!(plane.asked().len(), 1, "asked once");
    let shown = c.guard(&ListChange::Show).expect("show");
    assert!(
        shown.lists.global.deny.added.is_empty(),
        "the entry was kept"
    );
    // Once the plane takes writes again, the same change goes through.
    plane.refuse(false);
    assert!(c.guard(&deny("198.18.5.0/24")).expect("added").changed);
}

#[test]
fn a_reload_the_plane_refuses_changes_nothing() {
    let plane = Recording::default();
    let (mut c, pool) = with_planes(std::slice::from_ref(&plane));
    let smaller = Arc::new(
        config::parse(
            &pool_yaml(
                &["127.0.0.1:9001"],
                Some("kind: tcp, rise: 2, fall: 2, passive: true"),
            ),
            "t.yaml",
        )
        .expect("config"),
    );
    plane.refuse(true);
    let refused = c.reload(smaller.clone(), vec![pool.clone()], 1);
    assert!(refused.is_err());
    assert_eq!(plane.asked(), [("reload", 0, vec![State::Up])]);
    assert_eq!(reachable(&pool), [0, 1], "the old pool still serves");
    // Events of the refused generation are ignored; the old one's count.
    c.handle(Event::Check {
        generation: 1,
        pool: 0,
        backend: 1,
        outcome: Err(Failure::Reset),
    });
    c.handle(check(1, false));
    assert_eq!(c.status()[0][1].state(), State::Falling);
    plane.refuse(false);
    c.reload(smaller, vec![pool.clone()], 1).expect("reload");
    assert_eq!(reachable(&pool), [0]);
}

#[test]
fn when_one_plane_refuses_a_reload_the_others_are_put_back() {
    let (first, second) = (Recording::default(), Recording::default());
    let (mut c, pool) = with_planes(&[first.clone(), second.clone()]);
    second.refuse(true);
    let running = c.config.clone();
    let mut bigger = (*running).clone();
    let mut third = bigger.pools[0].backends[0];
    third.address = "127.0.0.1:9003".parse().expect("addr");
    bigger.pools[0].backends.push(third);
    assert!(c.reload(Arc::new(bigger), vec![pool], 1).is_err());
    let (up, down) = (State::Up, State::Down);
    assert_eq!(
        first.asked(),
        [
            ("reload", 0, vec![up, up, down]),
            ("reload", 0, vec![up, up])
        ],
        "the first plane gets the running config back"
    );
    assert_eq!(second.asked(), [("reload", 0, vec![up, up, down])]);
}

/// `setup`'s config with `backends`, the pool checked or not.
fn pool_of(backends: &[&str], checked: bool) -> Arc<config::Config> {
    let health = checked.then_some("kind: tcp, rise: 2, fall: 2");
    Arc::new(config::parse(&pool_yaml(backends, health), "t.yaml").expect("config"))
}

#[test]
fn a_backend_added_to_a_checked_pool_waits_for_its_checks() {
    let (mut c, pool) = setup(true);
    let three = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    c.reload(pool_of(&three, true), vec![pool.clone()], 1)
        .expect("reload");
    assert_eq!(c.status()[0][2].state(), State::Down);
    assert_eq!(reachable(&pool), [0, 1], "no traffic before its checks");
    let passed = |b| Event::Check {
        generation: 1,
        pool: 0,
        backend: b,
        outcome: Ok(Duration::from_millis(1)),
    };
    c.handle(passed(2));
    assert_eq!(reachable(&pool), [0, 1], "one pass of rise 2 is not enough");
    c.handle(passed(2));
    assert_eq!(reachable(&pool), [0, 1, 2]);
}

#[test]
fn a_backend_added_without_checks_or_to_an_empty_pool_serves_at_once() {
    let (mut c, pool) = setup(true);
    let three = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    c.reload(pool_of(&three, false), vec![pool.clone()], 1)
        .expect("reload");
    assert_eq!(reachable(&pool), [0, 1, 2]);
    // Emptied (a discovered pool whose source found nothing), then given
    // backends again: nothing serves it, so they start up, as at start.
    c.reload(pool_of(&[], true), vec![pool.clone()], 2)
        .expect("reload");
    assert!(reachable(&pool).is_empty());
    c.reload(pool_of(&three[..2], true), vec![pool.clone()], 3)
        .expect("reload");
    assert_eq!(reachable(&pool), [0, 1]);
}

#[test]
fn a_state_change_reaches_the_planes_and_a_refusal_keeps_the_proxies_current() {
    let plane = Recording::default();
    let (mut c, pool) = with_planes(std::slice::from_ref(&plane));
    plane.refuse(true);
    c.handle(check(1, false));
    assert!(plane.asked().is_empty(), "falling changes no plane");
    c.handle(check(1, false));
    assert_eq!(plane.asked(), [("update", 0, vec![State::Up, State::Down])]);
    assert_eq!(reachable(&pool), [0], "the proxies follow regardless");
}
