//! Which VIP addresses this host announces. A listener's address is a
//! candidate when it is a specific address (not a wildcard); it qualifies
//! while the listener's pool has at least `min_healthy` backends that take
//! new flows, and the host announces an address while one of its listeners
//! qualifies and the operator has not withdrawn the host. The host answers
//! for an address itself (its local route stays) when a proxy or http
//! listener is on it; an address only the XDP program serves must never be
//! answered by the host's stack.
//!
//! A flapping pool must not flap routes: an address is withdrawn as soon
//! as it stops qualifying, and announced again only once it has qualified
//! for the hold-down without a break. A fresh start waits the same way, so
//! a host does not announce before its health view has settled.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use super::report::{Reason, Vip};
use crate::{
    config::{Config, model::Mode},
    runtime::state::Status,
};

/// What the listeners on one address ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Whether any of them qualifies now.
    pub qualifies: bool,
    /// Whether the host answers for the address itself (a proxy or http
    /// listener is on it).
    pub answer: bool,
    /// The most backends taking new flows in any of their pools.
    pub up: usize,
}

/// Every address the config's listeners may announce, with what its
/// listeners ask for given backends in `status` (by pool, then backend)
/// and whether listener `i` is served by the XDP plane (`xdp_served[i]`).
#[must_use]
pub fn wanted(
    config: &Config,
    status: &[Vec<Status>],
    xdp_served: &[bool],
    min_healthy: u32,
) -> BTreeMap<IpAddr, Wanted> {
    let mut out: BTreeMap<IpAddr, Wanted> = BTreeMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let ip = l.address.ip();
        if ip.is_unspecified() {
            continue;
        }
        let kernel = xdp_served.get(i).copied().unwrap_or(false) && l.mode != Mode::Http;
        let up = l.pool.map_or(0, |p| {
            status
                .get(p)
                .map_or(0, |s| s.iter().filter(|b| b.new_flow_weight(1) > 0).count())
        });
        let entry = out.entry(ip).or_insert(Wanted {
            qualifies: false,
            answer: false,
            up: 0,
        });
        entry.qualifies |= up >= min_healthy as usize;
        entry.answer |= !kernel;
        entry.up = entry.up.max(up);
    }
    out
}

/// How long a fresh start waits before it may announce: until every
/// pool's checks could have moved a backend (they all start up), that is
/// the larger of `rise` and `fall` checks, each an interval (with its
/// jitter) plus the last one's timeout.
#[must_use]
pub fn settle_time(config: &Config) -> Duration {
    config
        .pools
        .iter()
        .filter_map(|p| p.health.as_ref())
        .map(|h| {
            let checks = h.rise.get().max(h.fall.get());
            (h.interval + h.jitter) * checks + h.timeout
        })
        .max()
        .unwrap_or_default()
}

/// Changes to make on the interface.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Addresses to put on, with whether the host answers for each.
    pub add: Vec<(IpAddr, bool)>,
    /// Addresses to take off.
    pub remove: Vec<IpAddr>,
}

/// The announcement state: what is announced, and since when each
/// qualifying address has qualified without a break.
#[derive(Debug)]
pub struct Announcer {
    hold: Duration,
    /// Nothing new is announced before this (see [`settle_time`]).
    not_before: Option<Instant>,
    since: BTreeMap<IpAddr, Instant>,
    announced: BTreeMap<IpAddr, bool>,
}

impl Announcer {
    /// Nothing announced yet; addresses need `hold` of qualifying first.
    #[must_use]
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            not_before: None,
            since: BTreeMap::new(),
            announced: BTreeMap::new(),
        }
    }

    /// Announces nothing new before `until`: the health view of a fresh
    /// start has not settled yet.
    pub fn settle(&mut self, until: Instant) {
        self.not_before = Some(until);
    }

    /// When an address qualifying since `since` may be announced.
    fn ready_at(&self, since: Instant) -> Instant {
        let held = since + self.hold;
        self.not_before.map_or(held, |t| t.max(held))
    }

    /// Starts from what is on the interface already (a restart): those
    /// addresses stay announced while they qualify, without a new hold.
    pub fn adopt(&mut self, present: impl IntoIterator<Item = (IpAddr, bool)>) {
        self.announced.extend(present);
    }

    /// The addresses announced, with whether the host answers for each.
    #[must_use]
    pub fn announced(&self) -> &BTreeMap<IpAddr, bool> {
        &self.announced
    }

    /// Moves to `wanted` at `now`, the host withdrawn or not: returns what
    /// to change on the interface, and records it as done.
    pub fn step(
        &mut self,
        now: Instant,
        wanted: &BTreeMap<IpAddr, Wanted>,
        withdrawn: bool,
    ) -> Changes {
        let mut changes = Changes::default();
        self.since
            .retain(|ip, _| wanted.get(ip).is_some_and(|w| w.qualifies));
        for (ip, w) in wanted {
            if w.qualifies {
                self.since.entry(*ip).or_insert(now);
            }
        }
        let keep: BTreeSet<IpAddr> = if withdrawn {
            BTreeSet::new()
        } else {
            wanted
                .iter()
                .filter(|(ip, w)| {
                    w.qualifies
                        && (self.announced.contains_key(*ip)
                            || self
                                .since
                                .get(*ip)
                                .is_some_and(|t| now >= self.ready_at(*t)))
                })
                .map(|(ip, _)| *ip)
                .collect()
        };
        for ip in self.announced.keys() {
            if !keep.contains(ip) {
                changes.remove.push(*ip);
            }
        }
        for ip in &changes.remove {
            self.announced.remove(ip);
        }
        for ip in keep {
            let answer = wanted[&ip].answer;
            if self.announced.get(&ip) != Some(&answer) {
                changes.add.push((ip, answer));
                self.announced.insert(ip, answer);
            }
        }
        changes
    }

    /// Netlink refused to put `ip` on: it counts as not announced, so the
    /// next step tries again.
    pub fn add_failed(&mut self, ip: IpAddr) {
        self.announced.remove(&ip);
    }

    /// Netlink refused to take `ip` off: it counts as announced still, so
    /// the next step tries again.
    pub fn remove_failed(&mut self, ip: IpAddr, answer: bool) {
        self.announced.insert(ip, answer);
    }

    /// Each candidate address as of the last [`Self::step`] at `now`, and
    /// why it is or is not announced; `failed` holds netlink's refusals.
    #[must_use]
    pub fn report(
        &self,
        now: Instant,
        wanted: &BTreeMap<IpAddr, Wanted>,
        withdrawn: bool,
        min_healthy: u32,
        failed: &BTreeMap<IpAddr, String>,
    ) -> Vec<Vip> {
        let mut ips: BTreeSet<IpAddr> = wanted.keys().copied().collect();
        ips.extend(self.announced.keys());
        ips.into_iter()
            .map(|ip| {
                let w = wanted.get(&ip);
                let announced = self.announced.contains_key(&ip);
                let reason = if let Some(error) = failed.get(&ip) {
                    Reason::Failed {
                        error: error.clone(),
                    }
                } else if withdrawn {
                    Reason::Withdrawn
                } else if let Some(w) = w.filter(|w| !w.qualifies) {
                    Reason::Unhealthy {
                        up: w.up,
                        needed: min_healthy,
                    }
                } else if announced {
                    Reason::Healthy
                } else {
                    let since = self.since.get(&ip).copied().unwrap_or(now);
                    let left = self.ready_at(since).saturating_duration_since(now);
                    Reason::HoldDown {
                        remaining_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                    }
                };
                Vip {
                    address: ip,
                    announced,
                    local: self
                        .announced
                        .get(&ip)
                        .copied()
                        .unwrap_or_else(|| w.is_some_and(|w| w.answer)),
                    reason,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        net::IpAddr,
        time::{Duration, Instant},
    };

    use super::{Announcer, Changes, Wanted, wanted};
    use crate::{
        config,
        runtime::state::{Admin, Health, Status},
    };

    const HOLD: Duration = Duration::from_secs(3);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn one(address: &str, qualifies: bool, answer: bool) -> BTreeMap<IpAddr, Wanted> {
        BTreeMap::from([(
            ip(address),
            Wanted {
                qualifies,
                answer,
                up: usize::from(qualifies),
            },
        )])
    }

    #[test]
    fn an_address_is_announced_after_the_hold_and_withdrawn_at_once() {
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        let w = one("198.18.100.10", true, false);
        assert_eq!(a.step(t0, &w, false), Changes::default(), "before the hold");
        assert_eq!(
            a.step(t0 + HOLD, &w, false).add,
            vec![(ip("198.18.100.10"), false)]
        );
        assert_eq!(a.step(t0 + HOLD * 2, &w, false), Changes::default());
        let down = one("198.18.100.10", false, false);
        assert_eq!(
            a.step(t0 + HOLD * 2, &down, false).remove,
            vec![ip("198.18.100.10")]
        );
        // A flap: back for less than the hold is not announced again.
        assert_eq!(a.step(t0 + HOLD * 3, &w, false), Changes::default());
        assert_eq!(
            a.step(t0 + HOLD * 3 + HOLD / 2, &down, false),
            Changes::default()
        );
        assert_eq!(a.step(t0 + HOLD * 4, &w, false), Changes::default());
        assert_eq!(
            a.step(t0 + HOLD * 5, &w, false).add,
            vec![(ip("198.18.100.10"), false)]
        );
    }

    #[test]
    fn withdrawing_the_host_takes_everything_off_and_restoring_waits_for_nothing_new() {
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        let mut w = one("198.18.100.10", true, false);
        w.extend(one("fd00:100::10", true, true));
        a.step(t0, &w, false);
        assert_eq!(a.step(t0 + HOLD, &w, false).add.len(), 2);
        let off = a.step(t0 + HOLD, &w, true);
        assert_eq!(off.remove.len(), 2);
        assert!(a.announced().is_empty());
        // Restored: the addresses qualified throughout, so they return at once.
        assert_eq!(a.step(t0 + HOLD * 2, &w, false).add.len(), 2);
    }

    #[test]
    fn a_restart_keeps_what_is_on_the_interface_while_it_qualifies() {
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        a.adopt([(ip("198.18.100.10"), false), (ip("198.18.100.99"), false)]);
        let changes = a.step(t0, &one("198.18.100.10", true, false), false);
        // Still wanted: no gap; no longer configured: taken off.
        assert_eq!(
            changes,
            Changes {
                add: vec![],
                remove: vec![ip("198.18.100.99")],
            }
        );
    }

    #[test]
    fn the_config_decides_candidates_answers_and_health() {
        let config = config::parse(
            "version: 1
listeners:
  - { name: vip, address: 198.18.100.10:80, protocol: tcp, mode: xdp, pool: web }
  - { name: web, address: 198.18.100.11:80, protocol: tcp, mode: proxy, pool: web }
  - { name: any, address: 0.0.0.0:81, protocol: tcp, mode: proxy, pool: web }
  - { name: both, address: 198.18.100.10:8080, protocol: tcp, mode: http, pool: two }
  - { name: only, address: 198.18.100.12:80, protocol: tcp, mode: xdp, pool: web }
pools:
  - name: web
    algorithm: maglev
    backends: [{ address: 198.18.1.11:80 }, { address: 198.18.1.12:80 }]
  - name: two
    backends: [{ address: 198.18.1.11:8080 }]
xdp: { interface: eth0 }
",
            "t.yaml",
        )
        .expect("config");
        let up = Status::default();
        let down = Status {
            health: Health::Down,
            ..Status::default()
        };
        let drained = Status {
            admin: Admin::Draining,
            ..Status::default()
        };
        let served = [true, false, false, false, true];
        let w = wanted(&config, &[vec![up, drained], vec![down]], &served, 1);
        // The wildcard is never announced; an address with an http
        // listener is answered locally even beside an XDP one.
        assert_eq!(
            w,
            BTreeMap::from([
                (
                    ip("198.18.100.10"),
                    Wanted {
                        qualifies: true,
                        answer: true,
                        up: 1,
                    }
                ),
                (
                    ip("198.18.100.11"),
                    Wanted {
                        qualifies: true,
                        answer: true,
                        up: 1,
                    }
                ),
                (
                    ip("198.18.100.12"),
                    Wanted {
                        qualifies: true,
                        answer: false,
                        up: 1,
                    }
                ),
            ])
        );
        // Two healthy backends needed: a drained one does not count.
        let w = wanted(&config, &[vec![up, drained], vec![up]], &served, 2);
        assert!(w.values().all(|x| !x.qualifies), "{w:?}");
    }

    #[test]
    fn the_report_says_why_each_address_is_or_is_not_announced() {
        use super::super::report::Reason;
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        let mut w = one("198.18.100.10", true, false);
        w.extend(one("198.18.100.11", false, true));
        a.step(t0, &w, false);
        let none = BTreeMap::new();
        let r = a.report(t0 + HOLD / 3, &w, false, 1, &none);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].reason,
            Reason::HoldDown {
                remaining_ms: u64::try_from(HOLD.saturating_sub(HOLD / 3).as_millis()).expect("ms")
            }
        );
        assert!(!r[0].announced && !r[0].local);
        assert_eq!(r[1].reason, Reason::Unhealthy { up: 0, needed: 1 });
        assert!(r[1].local);
        a.step(t0 + HOLD, &w, false);
        let r = a.report(t0 + HOLD, &w, false, 1, &none);
        assert!(r[0].announced && r[0].reason == Reason::Healthy);
        a.step(t0 + HOLD, &w, true);
        let r = a.report(t0 + HOLD, &w, true, 1, &none);
        assert!(
            r.iter()
                .all(|v| !v.announced && v.reason == Reason::Withdrawn)
        );
        // A refused add is retried by the next step, and reported meanwhile.
        a.step(t0 + HOLD, &w, false);
        a.add_failed(ip("198.18.100.10"));
        let failed = BTreeMap::from([(ip("198.18.100.10"), "EPERM".to_owned())]);
        let r = a.report(t0 + HOLD, &w, false, 1, &failed);
        assert_eq!(r[0].reason.label(), "failed");
        assert_eq!(a.step(t0 + HOLD, &w, false).add.len(), 1);
    }

    #[test]
    fn a_fresh_start_waits_until_the_checks_could_have_spoken() {
        let config = config::parse(
            "version: 1
listeners:
  - { name: vip, address: 198.18.100.10:80, protocol: tcp, mode: proxy, pool: web }
pools:
  - name: web
    health: { kind: tcp, interval: 2s, timeout: 1s, jitter: 100ms, rise: 2, fall: 3 }
    backends: [{ address: 198.18.1.11:80 }]
  - name: unchecked
    backends: [{ address: 198.18.1.12:80 }]
",
            "t.yaml",
        )
        .expect("config");
        let settle = super::settle_time(&config);
        assert_eq!(settle, Duration::from_millis(3 * 2100 + 1000));
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        a.settle(t0 + settle);
        let w = one("198.18.100.10", true, true);
        assert_eq!(a.step(t0, &w, false), Changes::default());
        assert!(a.step(t0 + HOLD, &w, false).add.is_empty(), "settling");
        assert_eq!(
            a.report(t0 + HOLD, &w, false, 1, &BTreeMap::new())[0].reason,
            super::super::report::Reason::HoldDown {
                remaining_ms: 7300 - 3000
            }
        );
        assert_eq!(a.step(t0 + settle, &w, false).add.len(), 1);
    }
}
