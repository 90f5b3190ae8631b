//! A soak run judged and written down: the promises it must keep (each
//! broken one is a line in [`problems`]), a summary for the test's output,
//! and the JSON that `cargo xtask soak` turns into `docs/soak.md` and its
//! plots.

use std::fmt::Write as _;

use super::{
    Run,
    record::Plane,
    site::{BACKENDS, GRACE_S},
    verdict,
};

/// Samples before this are warm-up (connections open, caches and
/// allocator pools fill).
pub const WARMUP_S: f64 = 30.0;
/// A new daemon's first seconds are its own warm-up: its UDP sessions
/// (10 s idle timeout) fill up and its keep-alive connections arrive.
pub const SETTLE_S: f64 = 30.0;
/// Memory may grow at most this much a minute within a daemon's life
/// after its warm-up: about 200 bytes per request at the soak's rate, so a
/// leak per request or per connection fails a 3-minute run, while the
/// warm-up of a debug build's 90-second daemons (which slows down as it
/// goes, about 1.8 MiB a minute here) passes with room for a slower
/// machine. A long run's figure (`docs/soak.md`) is the finer measure.
pub const RSS_KIB_PER_MIN: f64 = 4096.0;
/// Descriptors may grow at most this many a minute (one per thousand
/// requests would be 19); open sessions and connections come and go by
/// a few every second.
pub const FDS_PER_MIN: f64 = 10.0;
/// The most log lines in one second (a backend's state change logs one
/// line per pool and plane, a reload a few).
pub const LOG_PEAK_PER_S: u64 = 40;
/// The most log lines a minute on average.
pub const LOG_PER_MIN: f64 = 120.0;
/// Each plane answers at least this share of the requests it sent while
/// no backend was stopped ...
pub const MIN_SHARE: f64 = 0.9;
/// ... and sends at least this share of those planned (a kept
/// connection waits for each answer, and a lost packet costs it a
/// retransmission timeout).
pub const MIN_SENT: f64 = 0.5;

fn addresses(port: u16) -> Vec<String> {
    (0..BACKENDS)
        .map(|i| format!("{}:{port}", crate::l2::backend(i)))
        .collect()
}

fn served(run: &Run, plane: Plane) -> u64 {
    run.rates
        .iter()
        .find(|(p, _)| *p == plane)
        .map_or(0, |(_, s)| s.iter().map(|n| u64::from(*n)).sum())
}

/// Every promise the run broke, in words; empty when it was clean.
#[must_use]
pub fn problems(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let a = verdict::attribute(&run.failures, &run.flaps);
    for f in a.unexplained.iter().take(20) {
        out.push(format!(
            "{:.1} s, {}: {} (no backend was stopped then)",
            f.at,
            f.plane.name(),
            f.what
        ));
    }
    if a.unexplained.len() > 20 {
        out.push(format!(
            "... {} unexplained failures in all",
            a.unexplained.len()
        ));
    }
    // Each UDP exchange crosses a backend link twice.
    let p = f64::from(run.settings.loss_permille) / 1000.0;
    let udp = served(run, Plane::Udp) + served(run, Plane::UdpNew) + a.lost_outside;
    let expected = (1.0 - (1.0 - p).powi(2)) * udp as f64;
    if a.lost_outside as f64 > 3.0 * expected + 5.0 {
        out.push(format!(
            "{} UDP answers lost outside flaps, {expected:.0} expected from the packet loss",
            a.lost_outside
        ));
    }
    let seconds = run.settings.duration.as_secs_f64();
    for (plane, rate) in &run.nominal {
        let got = served(run, *plane) as f64;
        let mine = run.failures.iter().filter(|f| f.plane == *plane);
        let failed = mine.clone().count() as f64;
        let outside = mine
            .filter(|f| !run.flaps.iter().any(|fl| fl.explains(f.at)))
            .count() as f64;
        let sent = f64::from(*rate) * seconds;
        if got < MIN_SHARE * (got + outside) || got + failed < MIN_SENT * sent {
            out.push(format!(
                "{}: {got:.0} answered, {failed:.0} failed, of about {sent:.0} planned",
                plane.name()
            ));
        }
    }
    let samples = &run.samples;
    let rss = verdict::slope_per_minute(samples, |s| s.rss_kib as f64, WARMUP_S, SETTLE_S);
    let fds = verdict::slope_per_minute(samples, |s| s.fds as f64, WARMUP_S, SETTLE_S);
    match rss {
        Some(r) if r > RSS_KIB_PER_MIN => out.push(format!(
            "memory grew {r:.0} KiB a minute after warm-up (bound {RSS_KIB_PER_MIN})"
        )),
        None => out.push("too few samples to judge memory".into()),
        _ => {}
    }
    if let Some(f) = fds
        && f > FDS_PER_MIN
    {
        out.push(format!(
            "descriptors grew {f:.1} a minute after warm-up (bound {FDS_PER_MIN})"
        ));
    }
    let (peak, per_min) = verdict::log_rates(&run.samples);
    if peak > LOG_PEAK_PER_S || per_min > LOG_PER_MIN {
        out.push(format!(
            "log storm: {peak} lines in one second, {per_min:.0} a minute (bounds {LOG_PEAK_PER_S}, {LOG_PER_MIN})"
        ));
    }
    out.extend(run.panics.iter().map(|l| format!("panic: {l}")));
    out.extend(
        run.refused
            .iter()
            .map(|r| format!("admin call failed: {r}")),
    );
    for (i, e) in run.exits.iter().enumerate() {
        if e.is_none() {
            out.push(format!(
                "daemon {i} still ran {} s after its upgrade",
                GRACE_S + 5
            ));
        }
    }
    for (pool, port) in [("vip", 80), ("web", super::site::PROXY_PORT)] {
        for (flap, down, up) in verdict::reactions(&run.flaps, &run.changes, pool, &addresses(port))
        {
            if down.is_none() {
                out.push(format!(
                    "pool {pool}: backend {} stopped at {:.1} s was not marked down within {} s",
                    flap.backend + 1,
                    flap.start,
                    verdict::DOWN_WITHIN_S
                ));
            }
            if flap.end.is_some() && up.is_none() {
                out.push(format!(
                    "pool {pool}: backend {} started at {:.1} s was not marked up within {} s",
                    flap.backend + 1,
                    flap.end.unwrap_or_default(),
                    verdict::UP_WITHIN_S
                ));
            }
        }
    }
    out
}

/// A few lines for the test's output.
#[must_use]
pub fn summary(run: &Run) -> String {
    let mut s = String::new();
    let a = verdict::attribute(&run.failures, &run.flaps);
    let _ = writeln!(
        s,
        "soak: {:.1} min, {} flaps, {} actions, loss {}‰ ({} packets dropped), seed {}",
        run.settings.duration.as_secs_f64() / 60.0,
        run.flaps.len(),
        run.actions.len(),
        run.settings.loss_permille,
        run.dropped,
        run.settings.seed
    );
    for (plane, _) in &run.nominal {
        let reconnects = run
            .reconnects
            .iter()
            .find(|(p, _)| p == plane)
            .map_or(0, |(_, n)| *n);
        let explained = a
            .explained
            .iter()
            .find(|(p, _)| p == plane)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            s,
            "  {:<10} {:>8} answered, {:>4} failed during flaps, {:>4} reconnects",
            plane.name(),
            served(run, *plane),
            explained,
            reconnects
        );
    }
    let rss = verdict::slope_per_minute(&run.samples, |x| x.rss_kib as f64, WARMUP_S, SETTLE_S);
    let fds = verdict::slope_per_minute(&run.samples, |x| x.fds as f64, WARMUP_S, SETTLE_S);
    let (peak, per_min) = verdict::log_rates(&run.samples);
    let last = run.samples.last();
    let _ = writeln!(
        s,
        "  memory {:?} KiB/min (now {} KiB), descriptors {:?}/min (now {}), logs peak {peak}/s, {per_min:.1}/min",
        rss.map(f64::round),
        last.map_or(0, |x| x.rss_kib),
        fds.map(|f| (f * 10.0).round() / 10.0),
        last.map_or(0, |x| x.fds),
    );
    let _ = writeln!(
        s,
        "  UDP lost outside flaps {}, old daemons exited after {:?} s, false downs (vip) {}",
        a.lost_outside,
        run.exits
            .iter()
            .map(|e| e.map(|x| (x * 10.0).round() / 10.0))
            .collect::<Vec<_>>(),
        verdict::false_downs(&run.flaps, &run.changes, "vip", &addresses(80))
    );
    s
}

/// The run as JSON: settings, per-second series, actions, flaps and the
/// health reactions.
#[must_use]
pub fn json(run: &Run) -> serde_json::Value {
    let a = verdict::attribute(&run.failures, &run.flaps);
    let reactions: Vec<serde_json::Value> =
        verdict::reactions(&run.flaps, &run.changes, "vip", &addresses(80))
            .into_iter()
            .map(|(f, down, up)| {
                serde_json::json!({
                    "backend": f.backend + 1, "stopped": f.start, "started": f.end,
                    "down_after": down, "up_after": up,
                })
            })
            .collect();
    serde_json::json!({
        "minutes": run.settings.duration.as_secs_f64() / 60.0,
        "loss_permille": run.settings.loss_permille,
        "seed": run.settings.seed,
        "dropped_packets": run.dropped,
        "samples": run.samples.iter().map(|s| serde_json::json!({
            "at": s.at, "generation": s.generation, "rss_kib": s.rss_kib,
            "fds": s.fds, "log_lines": s.log_lines,
        })).collect::<Vec<_>>(),
        "rates": run.rates.iter().map(|(p, s)| (p.name().to_owned(), serde_json::json!(s)))
            .collect::<serde_json::Map<_, _>>(),
        "nominal": run.nominal.iter().map(|(p, r)| (p.name().to_owned(), serde_json::json!(r)))
            .collect::<serde_json::Map<_, _>>(),
        "failed_per_second": run.failed_per_second,
        "failures": run.failures.iter().map(|f| serde_json::json!({
            "at": f.at, "plane": f.plane.name(), "lost": f.lost, "what": f.what,
        })).collect::<Vec<_>>(),
        "explained": a.explained.iter().map(|(p, n)| (p.name().to_owned(), serde_json::json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "unexplained": a.unexplained.len(),
        "udp_lost_outside_flaps": a.lost_outside,
        "reconnects": run.reconnects.iter().map(|(p, n)| (p.name().to_owned(), serde_json::json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "actions": run.actions.iter().map(|x| serde_json::json!({"at": x.at, "what": x.what}))
            .collect::<Vec<_>>(),
        "health": reactions,
        "false_downs": verdict::false_downs(&run.flaps, &run.changes, "vip", &addresses(80)),
        "old_daemon_exit_s": run.exits,
        "rss_kib_per_min": verdict::slope_per_minute(&run.samples, |x| x.rss_kib as f64, WARMUP_S, SETTLE_S),
        "fds_per_min": verdict::slope_per_minute(&run.samples, |x| x.fds as f64, WARMUP_S, SETTLE_S),
        "log_peak_per_s": verdict::log_rates(&run.samples).0,
        "log_per_min": verdict::log_rates(&run.samples).1,
        "problems": problems(run),
    })
}
