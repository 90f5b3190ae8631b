//! What a soak run means, from what was recorded: which failures the
//! backend flaps explain, whether memory and descriptors stay flat after
//! warm-up, whether the logs stayed quiet, and whether health checks saw
//! each stopped backend go down and come back in time. Pure functions over
//! the records, so they are tested here on made-up runs.

use super::record::{Failure, Plane};

/// After a stopped backend starts again, failures this long after are
/// still its doing (a connection that raced the health check).
pub const AFTER_START_S: f64 = 5.0;
/// Health checks (1 s interval, 0.8 s timeout, fall 3) must mark a stopped
/// backend down within this long (three failed checks, jitter, the
/// control loop).
pub const DOWN_WITHIN_S: f64 = 6.0;
/// ... and up again within this long of its start (rise 2).
pub const UP_WITHIN_S: f64 = 6.0;

/// When backend `backend` was stopped and started again, in seconds since
/// the soak began (`end` is `None` when it was still down at the end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flap {
    /// Which backend.
    pub backend: usize,
    /// Stopped.
    pub start: f64,
    /// Started again.
    pub end: Option<f64>,
}

impl Flap {
    /// Whether a failure at `at` falls in this flap's shadow.
    #[must_use]
    pub fn explains(&self, at: f64) -> bool {
        at >= self.start - 0.5 && self.end.is_none_or(|e| at <= e + AFTER_START_S)
    }
}

/// Failures sorted into explained and not.
#[derive(Debug, Default)]
pub struct Attribution {
    /// Failures during a flap, per plane.
    pub explained: Vec<(Plane, u64)>,
    /// Client errors no flap explains.
    pub unexplained: Vec<Failure>,
    /// UDP answers lost outside flaps (what packet loss does).
    pub lost_outside: u64,
}

/// Sorts `failures` by `flaps`.
#[must_use]
pub fn attribute(failures: &[Failure], flaps: &[Flap]) -> Attribution {
    let mut a = Attribution::default();
    for f in failures {
        if flaps.iter().any(|fl| fl.explains(f.at)) {
            match a.explained.iter_mut().find(|(p, _)| *p == f.plane) {
                Some((_, n)) => *n += 1,
                None => a.explained.push((f.plane, 1)),
            }
        } else if f.lost {
            a.lost_outside += 1;
        } else {
            a.unexplained.push(f.clone());
        }
    }
    a.explained.sort();
    a
}

/// One reading of the serving daemon.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the soak began.
    pub at: f64,
    /// Which daemon (0 the first, +1 per upgrade).
    pub generation: usize,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open descriptors.
    pub fds: u64,
    /// Lines every daemon has logged so far.
    pub log_lines: u64,
}

/// The growth of `value` per minute across `samples` taken after
/// `warmup_s`, each daemon's first `settle_s` seconds left out: a least
/// squares slope shared by every daemon generation, each with its own
/// level (a new daemon starts from its own baseline, so only growth within
/// a daemon's life counts). `None` with fewer than 10 samples.
#[must_use]
pub fn slope_per_minute(
    samples: &[Sample],
    value: impl Fn(&Sample) -> f64,
    warmup_s: f64,
    settle_s: f64,
) -> Option<f64> {
    let mut first_seen: Vec<(usize, f64)> = Vec::new();
    for s in samples {
        if !first_seen.iter().any(|(g, _)| *g == s.generation) {
            first_seen.push((s.generation, s.at));
        }
    }
    let kept: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            let born = first_seen
                .iter()
                .find(|(g, _)| *g == s.generation)
                .map_or(0.0, |(_, at)| *at);
            s.at >= warmup_s && s.at >= born + settle_s
        })
        .collect();
    if kept.len() < 10 {
        return None;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (g, _) in &first_seen {
        let mine: Vec<&&Sample> = kept.iter().filter(|s| s.generation == *g).collect();
        if mine.len() < 2 {
            continue;
        }
        let n = mine.len() as f64;
        let mean_t = mine.iter().map(|s| s.at).sum::<f64>() / n;
        let mean_v = mine.iter().map(|s| value(s)).sum::<f64>() / n;
        for s in mine {
            num += (s.at - mean_t) * (value(s) - mean_v);
            den += (s.at - mean_t).powi(2);
        }
    }
    (den > 0.0).then(|| num / den * 60.0)
}

/// The most lines logged in one sampling interval, and lines per minute
/// over the whole run.
#[must_use]
pub fn log_rates(samples: &[Sample]) -> (u64, f64) {
    let peak = samples
        .windows(2)
        .map(|w| w[1].log_lines.saturating_sub(w[0].log_lines))
        .max()
        .unwrap_or(0);
    let per_minute = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.at > a.at => {
            b.log_lines.saturating_sub(a.log_lines) as f64 / (b.at - a.at) * 60.0
        }
        _ => 0.0,
    };
    (peak, per_minute)
}

/// A backend state change a daemon logged, in seconds since the soak
/// began.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// When.
    pub at: f64,
    /// The pool.
    pub pool: String,
    /// The backend's address.
    pub backend: String,
    /// The state it went to.
    pub to: String,
}

/// Reads the "backend state changed" lines of a daemon log; `start_of_day`
/// is the soak's start as seconds since midnight UTC (log lines carry the
/// time of day).
#[must_use]
pub fn changes(log: &str, start_of_day: f64) -> Vec<Change> {
    log.lines()
        .filter(|l| l.contains("backend state changed"))
        .filter_map(|l| {
            let clock = l.split_once('T')?.1.split_once('Z')?.0;
            let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
            let tod = parts.next()?? * 3600.0 + parts.next()?? * 60.0 + parts.next()??;
            let mut at = tod - start_of_day;
            if at < -3600.0 {
                at += 86_400.0;
            }
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some(Change {
                at,
                pool: field("pool=")?,
                backend: field("backend=")?,
                to: field("to=")?,
            })
        })
        .collect()
}

/// How health checks followed the flaps of `pool`'s backend
/// `addresses[flap.backend]`: for each flap, the seconds until it was
/// marked down and (once started) up again; `None` where no change came
/// within the bounds.
#[must_use]
pub fn reactions(
    flaps: &[Flap],
    changes: &[Change],
    pool: &str,
    addresses: &[String],
) -> Vec<(Flap, Option<f64>, Option<f64>)> {
    let first = |addr: &str, to: &str, from: f64, within: f64| {
        changes
            .iter()
            .filter(|c| c.pool == pool && c.backend == addr && c.to == to)
            .map(|c| c.at - from)
            .filter(|d| *d >= 0.0 && *d <= within)
            .reduce(f64::min)
    };
    flaps
        .iter()
        .map(|f| {
            let addr = &addresses[f.backend];
            let down = first(addr, "down", f.start, DOWN_WITHIN_S);
            let up = f.end.and_then(|e| first(addr, "up", e, UP_WITHIN_S));
            (*f, down, up)
        })
        .collect()
}

/// Health changes that no flap explains: a backend that was serving
/// marked down (a few checks lost to the injected packet loss in a row).
#[must_use]
pub fn false_downs(flaps: &[Flap], changes: &[Change], pool: &str, addresses: &[String]) -> usize {
    changes
        .iter()
        .filter(|c| c.pool == pool && c.to == "down")
        .filter(|c| {
            !flaps.iter().any(|f| {
                addresses.get(f.backend) == Some(&c.backend)
                    && c.at >= f.start
                    && f.end.is_none_or(|e| c.at <= e + UP_WITHIN_S)
            })
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: f64, plane: Plane, lost: bool) -> Failure {
        Failure {
            at,
            plane,
            lost,
            what: "x".into(),
        }
    }

    #[test]
    fn a_failure_is_explained_only_in_a_flaps_shadow() {
        let flaps = [Flap {
            backend: 0,
            start: 10.0,
            end: Some(17.0),
        }];
        let a = attribute(
            &[
                failure(9.6, Plane::XdpNew, false),
                failure(21.9, Plane::XdpNew, false),
                failure(22.5, Plane::Proxy, false),
                failure(40.0, Plane::Udp, true),
                failure(12.0, Plane::Udp, true),
            ],
            &flaps,
        );
        assert_eq!(a.explained, vec![(Plane::XdpNew, 2), (Plane::Udp, 1)]);
        assert_eq!(a.unexplained.len(), 1);
        assert_eq!(a.unexplained[0].plane, Plane::Proxy);
        assert_eq!(a.lost_outside, 1);
        // A backend still down at the end explains everything after.
        let open = [Flap {
            backend: 1,
            start: 50.0,
            end: None,
        }];
        assert!(open[0].explains(500.0) && !open[0].explains(49.0));
    }

    fn run(gens: &[(u64, u64, usize)], per_s: u64) -> Vec<Sample> {
        // (from, to, generation): rss grows by `per_s` KiB a second within a
        // generation, each generation starting 5 MiB apart.
        let mut out = Vec::new();
        for &(from, to, generation) in gens {
            for t in from..to {
                out.push(Sample {
                    at: t as f64,
                    generation,
                    rss_kib: 20_000 + 5_000 * generation as u64 + per_s * (t - from),
                    fds: 40,
                    log_lines: t / 10,
                });
            }
        }
        out
    }

    #[test]
    fn the_slope_counts_growth_within_each_daemon_not_between_them() {
        let gens = [(0, 60, 0), (60, 120, 1), (120, 180, 2)];
        let rss = |s: &Sample| s.rss_kib as f64;
        // Flat within each life: each new daemon's higher level is no leak.
        let flat = slope_per_minute(&run(&gens, 0), rss, 30.0, 10.0).expect("enough");
        assert!(flat.abs() < 1.0, "{flat}");
        // 10 KiB a second within each life is 600 KiB a minute.
        let leak = slope_per_minute(&run(&gens, 10), rss, 30.0, 10.0).expect("enough");
        assert!((leak - 600.0).abs() < 20.0, "{leak}");
        assert_eq!(slope_per_minute(&run(&gens, 0)[..5], rss, 0.0, 0.0), None);
    }

    #[test]
    fn log_rates_find_the_peak_interval_and_the_average() {
        let mut s = run(&[(0, 61, 0)], 0);
        s[30].log_lines += 50;
        for later in &mut s[31..] {
            later.log_lines += 50;
        }
        let (peak, per_minute) = log_rates(&s);
        // The burst, on top of the one line every 10 s.
        assert_eq!(peak, 51);
        assert!((per_minute - 56.0).abs() < 1.0, "{per_minute}");
    }

    #[test]
    fn state_changes_are_read_from_log_lines_and_matched_to_flaps() {
        let log = "2026-12-02T10:00:13.500000Z  WARN balancer::runtime::control: backend state changed pool=vip backend=198.18.0.11:80 from=up to=down cause=health\n\
                   2026-12-02T10:00:21.000000Z  INFO balancer::runtime::control: backend state changed pool=vip backend=198.18.0.11:80 from=down to=up cause=health\n\
                   2026-12-02T10:00:40.000000Z  WARN balancer::runtime::control: backend state changed pool=vip backend=198.18.0.12:80 from=up to=down cause=health\n\
                   2026-12-02T10:00:41.000000Z  INFO something else\n";
        let c = changes(log, 36_000.0);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].at, c[0].to.as_str()), (13.5, "down"));
        let addrs = vec!["198.18.0.11:80".to_owned(), "198.18.0.12:80".to_owned()];
        let flaps = [Flap {
            backend: 0,
            start: 10.0,
            end: Some(18.0),
        }];
        let r = reactions(&flaps, &c, "vip", &addrs);
        assert_eq!(r[0].1, Some(3.5));
        assert_eq!(r[0].2, Some(3.0));
        assert_eq!(false_downs(&flaps, &c, "vip", &addrs), 1);
    }
}
