//! `docs/bench/README.md`: every benchmark's ratios against their targets
//! on one page, met or missed, each linking the page that explains it.
//! Built from the JSON files the benchmarks wrote (`cargo xtask bench all`
//! runs them all first; `cargo xtask bench summary` only rewrites this
//! page), so it always shows the figures the pages show.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde_json::Value;

/// A ratio's target.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

impl Bound {
    fn met(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(g) => v >= g,
            Bound::AtMost(g) => v <= g,
        }
    }

    fn text(self) -> String {
        match self {
            Bound::AtLeast(g) => format!(">= {g}"),
            Bound::AtMost(g) => format!("<= {g}"),
        }
    }
}

/// One row of the summary.
struct Row {
    page: &'static str,
    what: String,
    value: String,
    goal: String,
    met: Option<bool>,
}

/// The benchmark pages, in the order the summary lists them, with what
/// each measures.
const PAGES: &[(&str, &str)] = &[
    (
        "xdp",
        "XDP fast path: ns per packet beside a bare XDP_TX program",
    ),
    (
        "guard",
        "guard: cost per verdict, a spoofed SYN flood on veth",
    ),
    ("proxy", "TCP proxy vs HAProxy, nginx stream and direct"),
    ("udp", "UDP proxy vs nginx stream and direct"),
    ("http", "HTTP layer vs HAProxy and nginx"),
    ("tls", "TLS termination vs HAProxy and nginx"),
    ("control", "control plane: failover, reload, scraping"),
];

/// Writes `docs/bench/README.md` from the pages' JSON files.
pub fn write(root: &Path) -> Result<()> {
    let dir = root.join("docs/bench");
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (page, _) in PAGES {
        let path = dir.join(format!("{page}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            missing.push(*page);
            continue;
        };
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        rows.extend(rows_of(page, &v));
    }
    let md = render(&rows, &missing);
    let out = dir.join("README.md");
    std::fs::write(&out, md).with_context(|| format!("cannot write {}", out.display()))?;
    let (met, missed) = rows.iter().fold((0, 0), |(m, x), r| match r.met {
        Some(true) => (m + 1, x),
        Some(false) => (m, x + 1),
        None => (m, x),
    });
    println!(
        "wrote {} ({met} targets met, {missed} missed)",
        out.display()
    );
    Ok(())
}

fn rows_of(page: &'static str, v: &Value) -> Vec<Row> {
    match page {
        "proxy" => proxy(v),
        "udp" => udp(v),
        "xdp" => xdp(v),
        "http" => over_peers(
            page,
            v,
            &[
                (
                    "keepalive_rps",
                    "keep-alive req/s, balancer / better peer",
                    1.1,
                ),
                (
                    "close_rps",
                    "`Connection: close` req/s, balancer / better peer",
                    1.1,
                ),
                ("h2_rps", "HTTP/2 req/s, balancer / better peer", 1.1),
            ],
        ),
        "tls" => tls(v),
        "control" => control(v),
        _ => Vec::new(),
    }
}

fn row(page: &'static str, what: &str, value: f64, bound: Bound, figures: &str) -> Row {
    Row {
        page,
        what: what.to_owned(),
        value: format!("{value:.2}x ({figures})"),
        goal: bound.text(),
        met: Some(bound.met(value)),
    }
}

/// The proxy page computes its own ratios against its targets.
fn proxy(v: &Value) -> Vec<Row> {
    let Some(ratios) = v["ratios"].as_array() else {
        return Vec::new();
    };
    ratios
        .iter()
        .map(|r| Row {
            page: "proxy",
            what: r["what"].as_str().unwrap_or("?").to_owned(),
            value: format!(
                "{:.2}x ({})",
                r["value"].as_f64().unwrap_or(f64::NAN),
                r["figures"].as_str().unwrap_or("")
            ),
            goal: r["goal"].as_str().unwrap_or("?").to_owned(),
            met: r["met"].as_bool(),
        })
        .collect()
}

fn udp(v: &Value) -> Vec<Row> {
    let Some(r) = v["ratios"]["balancer_nginx"].as_f64() else {
        return Vec::new();
    };
    let figures = format!(
        "{:.0} vs {:.0} pairs/s",
        v["balancer"]["median"].as_f64().unwrap_or(f64::NAN),
        v["nginx"]["median"].as_f64().unwrap_or(f64::NAN)
    );
    vec![row(
        "udp",
        "request/response pairs/s, balancer / nginx",
        r,
        Bound::AtLeast(1.2),
        &figures,
    )]
}

/// The median over `runs` of figure `key`.
fn median(runs: &[Value], key: &str) -> Option<f64> {
    of(runs.iter().map(|r| &r[key]))
}

/// The median of the numbers among `values`, if there are any.
fn of<'a>(values: impl Iterator<Item = &'a Value>) -> Option<f64> {
    let mut v: Vec<f64> = values.filter_map(Value::as_f64).collect();
    (!v.is_empty()).then(|| super::spread(&mut v).0)
}

fn xdp(page: &Value) -> Vec<Row> {
    let Some(runs) = page["rounds"].as_array() else {
        return Vec::new();
    };
    let cases = [
        (
            "established_tcp",
            "bare_tx",
            "established DSR flow, ns / bare XDP_TX",
            Bound::AtMost(2.0),
            "ns",
        ),
        (
            "new_flow_syn_single",
            "bare_tx_single",
            "new flow (SYN), ns / bare",
            Bound::AtMost(3.0),
            "ns",
        ),
        (
            "udp",
            "bare_tx",
            "UDP established, ns / bare",
            Bound::AtMost(2.0),
            "ns",
        ),
        (
            "not_vip_pass",
            "bare_tx",
            "packet for no VIP, ns / bare",
            Bound::AtMost(1.5),
            "ns",
        ),
        (
            "ipip_established_tcp",
            "bare_tx",
            "established IP-in-IP flow, ns / bare",
            Bound::AtMost(2.5),
            "ns",
        ),
        (
            "live_established_tcp_mpps",
            "live_bare_tx_mpps",
            "live frames on veth, balancer / bare",
            Bound::AtLeast(0.9),
            "Mpps",
        ),
        (
            "lookup16_tx",
            "bare_tx",
            "floor: one hash-table hit, ns / bare (reported)",
            Bound::AtMost(f64::INFINITY),
            "ns",
        ),
    ];
    cases
        .iter()
        .filter_map(|(key, base, what, bound, unit)| {
            let (ours, bare) = (median(runs, key)?, median(runs, base)?);
            let figures = format!("{ours:.1} vs {bare:.1} {unit}");
            let mut r = row("xdp", what, ours / bare, *bound, &figures);
            if matches!(bound, Bound::AtMost(g) if g.is_infinite()) {
                "(reported)".clone_into(&mut r.goal);
                r.met = None;
            }
            Some(r)
        })
        .collect()
}

/// `balancer.KEY` over the better of `haproxy.KEY` and `nginx.KEY`.
fn over_peers(page: &'static str, v: &Value, keys: &[(&str, &str, f64)]) -> Vec<Row> {
    let med = |who: &str, key: &str| v[format!("{who}.{key}")]["median"].as_f64();
    keys.iter()
        .filter_map(|(key, what, goal)| {
            let b = med("balancer", key)?;
            let peer = med("haproxy", key)?.max(med("nginx", key)?);
            let figures = format!("{b:.0} vs {peer:.0}");
            Some(row(page, what, b / peer, Bound::AtLeast(*goal), &figures))
        })
        .collect()
}

fn tls(v: &Value) -> Vec<Row> {
    let mut rows = over_peers(
        "tls",
        v,
        &[
            (
                "full13_ecdsa",
                "full handshakes/s, TLS 1.3 ECDSA, balancer / better peer",
                1.2,
            ),
            (
                "full12_ecdsa",
                "full handshakes/s, TLS 1.2 ECDSA, balancer / better peer",
                1.2,
            ),
            (
                "full13_rsa",
                "full handshakes/s, TLS 1.3 RSA, balancer / better peer",
                1.2,
            ),
            (
                "full12_rsa",
                "full handshakes/s, TLS 1.2 RSA, balancer / better peer",
                1.2,
            ),
            (
                "keepalive_rps",
                "HTTPS keep-alive req/s, balancer / better peer",
                1.1,
            ),
        ],
    );
    let med = |key: &str| v[format!("balancer.{key}")]["median"].as_f64();
    for (resumed, full, what) in [
        (
            "resumed13_ecdsa",
            "full13_ecdsa",
            "resumed / full handshakes, TLS 1.3",
        ),
        (
            "resumed12_ecdsa",
            "full12_ecdsa",
            "resumed / full handshakes, TLS 1.2",
        ),
    ] {
        if let (Some(r), Some(f)) = (med(resumed), med(full)) {
            let figures = format!("{r:.0} vs {f:.0} handshakes/s");
            rows.push(row("tls", what, r / f, Bound::AtLeast(3.0), &figures));
        }
    }
    rows
}

fn control(v: &Value) -> Vec<Row> {
    let list_median = |key: &str| v[key].as_array().and_then(|a| of(a.iter()));
    let mut rows = Vec::new();
    if let (Some(ms), Some(bound)) = (list_median("failover_ms"), v["failover_bound_ms"].as_f64()) {
        rows.push(Row {
            page: "control",
            what: "failover: backend stopped -> marked down".to_owned(),
            value: format!("{ms:.0} ms"),
            goal: format!("<= {bound:.0} ms"),
            met: Some(ms <= bound),
        });
    }
    if let Some(ms) = list_median("reload_ms_10000_backends") {
        rows.push(Row {
            page: "control",
            what: "reload with 10,000 backends".to_owned(),
            value: format!("{ms:.0} ms"),
            goal: "< 1000 ms".to_owned(),
            met: Some(ms < 1000.0),
        });
    }
    rows
}

fn render(rows: &[Row], missing: &[&str]) -> String {
    let mut md = String::from(
        "# Benchmarks: every target on one page\n\n\
         Generated by `cargo xtask bench all` (or `cargo xtask bench summary`, which only rewrites this\n\
         page) from the JSON files of the pages below; each page keeps its method, its raw figures and the\n\
         analysis of every figure, including why a missed target is missed. Targets are reported, never\n\
         asserted: tests assert behaviour.\n\n\
         | page | comparison | measured | target | met |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "MISS",
            None => "",
        };
        let _ = writeln!(
            md,
            "| [{p}]({p}.md) | {} | {} | {} | {met} |",
            r.what,
            r.value,
            r.goal,
            p = r.page
        );
    }
    md.push_str("\n## Pages\n\n");
    for (page, what) in PAGES {
        let note = if missing.contains(page) {
            " (not run yet: no JSON)"
        } else {
            ""
        };
        let _ = writeln!(md, "- [{page}.md]({page}.md): {what}{note}");
    }
    md
}
