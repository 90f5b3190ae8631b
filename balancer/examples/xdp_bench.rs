//! Measures the XDP program's cost per packet with `BPF_PROG_TEST_RUN`,
//! beside a bare `XDP_TX` program in the same run, and prints the figures
//! as JSON. Run by `cargo xtask bench xdp` (needs root); not a test.
//!
//! Cases: an established flow (flow-table hit), a new flow (ring lookup and
//! table insert: distinct SYNs, one run each), UDP, and a packet for no VIP;
//! then the same established flow and new flow with IP-in-IP. The repeat
//! loop does not restore the frame, so an encapsulating program would see
//! its own output from the second run on: repeated IP-in-IP runs go through
//! the harness program (`bench_restore`), which puts the frame back and
//! tail-calls the balancer; the harness's own cost, measured in front of
//! the bare program, is subtracted.
//! Repeated cases use the kernel's own repeat loop, in interleaved slices
//! (the median slice is reported); the new-flow case cannot
//! (a repeat would hit the entry the first run made), so it and its bare
//! yardstick are measured as single runs over distinct packets. Given an
//! interface name, it also sends live frames (`BPF_F_TEST_XDP_LIVE_FRAMES`)
//! out of it and reports millions of packets per second. With
//! `--against OBJECT`, another build's XDP object (say, the last commit's)
//! runs the TCP, UDP and no-VIP cases interleaved with this one, as
//! `against_*`: an A/B comparison within one run. The established flow is
//! also timed with the kernel diagnostics at `trace`
//! (`diag_trace_established_tcp`): no report lies on that path, so it
//! should cost what it costs with them off. Needs the `testkit` feature.

use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use balancer_common::Counter;

use balancer::{
    config::{self, model::KernelLog},
    dataplane::xdp::{
        Entry, Sizes, XdpProgram,
        diag::{Diagnostics, Reading, bridge::Bridge},
        packet::{ACK, Frame, SYN},
        tables::{BackendIds, Tables},
        testkit,
    },
};

const REPEAT: u32 = 1_000_000;
/// Interleaved slices the repeated cases' runs are split into.
const SLICES: u32 = 20;
const DISTINCT: u16 = 20_000;
const LIVE: u32 = 5_000_000;

const CONFIG: &str = "version: 1
listeners:
  - { name: web, address: 198.18.100.10:80, protocol: tcp, mode: xdp, pool: web }
  - { name: dns, address: 198.18.100.10:53, protocol: udp, mode: xdp, pool: dns }
pools:
  - name: web
    algorithm: maglev
    backends: [{ address: 198.18.0.11:80 }, { address: 198.18.0.12:80 }, { address: 198.18.0.13:80 }]
  - name: dns
    algorithm: maglev
    backends: [{ address: 198.18.0.11:53 }, { address: 198.18.0.12:53 }]
xdp: { interface: eth0, forwarding: dsr, flow_table_size: 1000000 }
";

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 10);

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Mean kernel time of single runs over `frames`.
fn single_runs(prog: &XdpProgram, frames: impl Iterator<Item = Vec<u8>>) -> anyhow::Result<f64> {
    let (mut total, mut n) = (0.0, 0.0);
    for f in frames {
        total += ns(prog.time(&f, 1)?);
        n += 1.0;
    }
    Ok(total / n)
}

/// The tables of `yaml` with the packet tests' egress and next hops (one
/// link), so the figures are for the frames those tests check byte for byte.
fn tables_of(yaml: &str) -> anyhow::Result<Tables> {
    let cfg = config::parse(yaml, "xdp_bench")?;
    let listeners: Vec<_> = cfg.listeners.iter().collect();
    Ok(Tables::build(
        &listeners,
        &cfg.pools,
        &testkit::egress(&cfg),
        &mut BackendIds::default(),
        &testkit::hop_of,
    )?)
}

/// The interface for live frames and the other build's object, if given.
fn args() -> anyhow::Result<(Option<String>, Option<Vec<u8>>)> {
    let mut args = std::env::args().skip(1);
    let (mut ifname, mut against) = (None, None);
    while let Some(a) = args.next() {
        if a == "--against" {
            let path = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("--against needs an object path"))?;
            against = Some(std::fs::read(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?);
        } else {
            ifname = Some(a);
        }
    }
    Ok((ifname, against))
}

fn main() -> anyhow::Result<()> {
    let (ifname, against) = args()?;
    let tables = tables_of(CONFIG)?;
    let mut lb = XdpProgram::load(Sizes::for_tables(&tables, 1_000_000))?;
    lb.apply(None, &tables)?;
    // The other build, when asked for; else this one again (its figures
    // then only show the noise).
    let mut other = match &against {
        Some(object) => XdpProgram::load_object(object, Sizes::for_tables(&tables, 1_000_000))?,
        None => XdpProgram::load(Sizes::for_tables(&tables, 1_000_000))?,
    };
    other.apply(None, &tables)?;
    let (traced, _diag) = traced(&tables)?;
    let bare = XdpProgram::load_bare_tx()?;
    let lookup16 = XdpProgram::load_yardstick(Entry::Lookup16Tx)?;
    let lookup40 = XdpProgram::load_yardstick(Entry::Lookup40Tx)?;

    let established = Frame::tcp4(CLIENT, 40_000, VIP, 80, ACK).bytes();
    lb.run(&established)?; // places the flow
    let udp = Frame::udp4(CLIENT, 40_000, VIP, 53).bytes();
    lb.run(&udp)?;
    other.run(&established)?;
    other.run(&udp)?;
    traced.run(&established)?;
    let not_vip = Frame::tcp4(CLIENT, 40_000, Ipv4Addr::new(198, 18, 0, 2), 22, ACK).bytes();

    let syns = |base: u16| {
        (0..DISTINCT).map(move |i| Frame::tcp4(CLIENT, base.wrapping_add(i), VIP, 80, SYN).bytes())
    };
    let live = match ifname {
        Some(ifname) => live_frames(&ifname, &bare, &lb, &established)?,
        None => Vec::new(),
    };
    // IP-in-IP: the same flows, behind the harness where repeated.
    let ipip_tables = tables_of(&CONFIG.replace("forwarding: dsr", "forwarding: ipip"))?;
    let ipip_sizes = Sizes::for_tables(&ipip_tables, 1_000_000);
    let mut ipip = XdpProgram::load_restoring(ipip_sizes, Entry::Balancer, &established)?;
    ipip.apply(None, &ipip_tables)?;
    ipip.run(&established)?; // places the flow
    let mut ipip_plain = XdpProgram::load(ipip_sizes)?;
    ipip_plain.apply(None, &ipip_tables)?;
    let mut dsr_harnessed = XdpProgram::load_restoring(
        Sizes::for_tables(&tables, 1_000_000),
        Entry::Balancer,
        &established,
    )?;
    dsr_harnessed.apply(None, &tables)?;
    dsr_harnessed.run(&established)?;
    let harness_bare = XdpProgram::load_restoring(Sizes::MINIMAL, Entry::BareTx, &established)?;

    // The repeated cases run interleaved, in slices: this VM's speed drifts
    // by tens of percent within a minute, and a drift then lands on every
    // case alike instead of on whichever ran last. Each figure is the
    // median of its slices; the harness's cost is subtracted slice by slice.
    lookup16.run(&established)?; // inserts the key
    lookup40.run(&established)?;
    let cases: [(&str, &XdpProgram, &[u8]); 13] = [
        ("bare_tx", &bare, &established),
        ("established_tcp", &lb, &established),
        ("udp", &lb, &udp),
        ("not_vip_pass", &lb, &not_vip),
        ("harness_bare_tx", &harness_bare, &established),
        ("established_tcp_via_harness", &dsr_harnessed, &established),
        ("ipip_established_tcp", &ipip, &established),
        ("lookup16_tx", &lookup16, &established),
        ("lookup40_tx", &lookup40, &established),
        ("against_established_tcp", &other, &established),
        ("against_udp", &other, &udp),
        ("against_not_vip_pass", &other, &not_vip),
        ("diag_trace_established_tcp", &traced, &established),
    ];
    let mut slices: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..SLICES {
        let mut t = vec![0.0; cases.len()];
        for (i, (_, prog, frame)) in cases.iter().enumerate() {
            t[i] = ns(prog.time(frame, REPEAT / SLICES)?);
        }
        // Behind the harness: harness + program - (harness + bare) + bare.
        for i in [5, 6] {
            t[i] = t[i] - t[4] + t[0];
        }
        for (i, v) in t.iter().enumerate() {
            slices[i].push(*v);
        }
    }
    let mut pairs: Vec<(String, f64)> = cases
        .iter()
        .zip(&slices)
        .map(|((name, _, _), v)| ((*name).to_owned(), median(v)))
        .collect();
    for (name, prog) in [
        ("bare_tx_single", &bare),
        ("new_flow_syn_single", &lb),
        ("against_new_flow_syn_single", &other),
        ("ipip_new_flow_syn_single", &ipip_plain),
    ] {
        pairs.push((name.to_owned(), single_runs(prog, syns(1024))?));
    }
    pairs.extend(flow_curve(&tables, &established, &bare)?);
    pairs.extend(rings_and_vips(&bare, &not_vip)?);
    let results = serde_json_like(&pairs, &live);
    println!("{results}");
    Ok(())
}

/// Live frames: `XDP_TX` really transmits on `ifname`, whose peer must run
/// NAPI (an XDP program). Packets per second, in millions, for the bare
/// program and the balancer's established flow.
fn live_frames(
    ifname: &str,
    bare: &XdpProgram,
    lb: &XdpProgram,
    frame: &[u8],
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let ifindex: u32 = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))?
        .trim()
        .parse()?;
    let mpps = |d: Duration| f64::from(LIVE) / d.as_secs_f64() / 1e6;
    Ok(vec![
        ("live_bare_tx_mpps", mpps(bare.live(frame, ifindex, LIVE)?)),
        (
            "live_established_tcp_mpps",
            mpps(lb.live(frame, ifindex, LIVE)?),
        ),
    ])
}

/// The balancer reporting at its most verbose; the ring is never read,
/// and nothing on the timed paths writes to it. The diagnostics must live
/// as long as the program is timed.
fn traced(tables: &Tables) -> anyhow::Result<(XdpProgram, Diagnostics)> {
    let mut traced = XdpProgram::load(Sizes::for_tables(tables, 1_000_000))?;
    traced.apply(None, tables)?;
    let quiet = Bridge::new("balancer", Box::new(|_| {}), std::sync::Arc::default());
    let diag = Diagnostics::take(&mut traced, quiet, KernelLog::Trace, Reading::OnDemand)?;
    Ok((traced, diag))
}

/// The median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Flow-table sizes of the cost curve: live flows the packets spread over.
const CURVE_FLOWS: [u32; 4] = [1, 10_000, 100_000, 1_000_000];
/// Runs per curve point (each flow about twice at the largest size), in
/// [`SLICES`] interleaved slices.
const CURVE_REPEAT: u32 = 2_000_000;

/// The established-flow cost as the flow table fills: for each size, the
/// balancer behind the walking harness (each run the next flow, so
/// lookups miss the caches as real traffic does) against the harness in
/// front of the bare program, both after one pass that places every flow.
/// `walk_established_N` is harness + balancer - (harness + bare) + bare;
/// `walk_new_flows_N` counts flows placed during the timed runs (0 when
/// the table held them all).
fn flow_curve(
    tables: &Tables,
    frame: &[u8],
    bare: &XdpProgram,
) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for n in CURVE_FLOWS {
        let mut lb =
            XdpProgram::load_walking(Sizes::for_tables(tables, 2_000_000), Entry::Balancer, n)?;
        lb.apply(None, tables)?;
        let walk_bare = XdpProgram::load_walking(Sizes::MINIMAL, Entry::BareTx, n)?;
        lb.time(frame, n)?; // places every flow
        let placed = lb.counters()?[Counter::FlowNew as usize];
        let mut slices = Vec::new();
        for _ in 0..SLICES {
            let per = CURVE_REPEAT / SLICES;
            let (a, b, c) = (
                ns(lb.time(frame, per)?),
                ns(walk_bare.time(frame, per)?),
                ns(bare.time(frame, per)?),
            );
            slices.push(a - b + c);
        }
        let new = lb.counters()?[Counter::FlowNew as usize] - placed;
        out.push((format!("walk_established_{n}"), median(&slices)));
        out.push((format!("walk_new_flows_{n}"), new as f64));
    }
    Ok(out)
}

/// New flows (single runs over distinct SYNs) and packets for no VIP with
/// a larger Maglev ring (655,373 slots against the default 65,537) and
/// with 1,000 VIPs (one pool, 198.18.104.1 upwards; the SYNs go to the
/// middle one), beside the bare
/// program measured the same way: `new_flow_ring_N`, `new_flow_vips_1000`,
/// `not_vip_vips_1000` (with the main cases' `not_vip` frame),
/// `bare_tx_single_rings`.
fn rings_and_vips(bare: &XdpProgram, not_vip: &[u8]) -> anyhow::Result<Vec<(String, f64)>> {
    let web = |ring: u32, listeners: &str| {
        format!(
            "version: 1\nlisteners:\n{listeners}pools:\n  - name: web\n    algorithm: maglev\n    maglev_table_size: {ring}\n    \
             backends: [{{ address: 198.18.0.11:80 }}, {{ address: 198.18.0.12:80 }}, {{ address: 198.18.0.13:80 }}]\n\
             xdp: {{ interface: eth0, forwarding: dsr, flow_table_size: 1000000 }}\n"
        )
    };
    let one = "  - { name: web, address: 198.18.100.10:80, protocol: tcp, mode: xdp, pool: web }\n";
    let many = (0..1000u16).fold(String::new(), |mut s, i| {
        let _ = writeln!(
            s,
            "  - {{ name: web{i}, address: 198.18.{}.{}:80, protocol: tcp, mode: xdp, pool: web }}",
            104 + i / 250,
            i % 250 + 1
        );
        s
    });
    let syns = |vip: Ipv4Addr| {
        (0..DISTINCT).map(move |i| Frame::tcp4(CLIENT, 1024 + i, vip, 80, SYN).bytes())
    };
    // One in the middle of the 1,000 VIPs.
    let middle = Ipv4Addr::new(198, 18, 106, 1);
    let mut out = Vec::new();
    for (name, yaml, vip) in [
        ("new_flow_ring_65537", web(65_537, one), VIP),
        ("new_flow_ring_655373", web(655_373, one), VIP),
        ("new_flow_vips_1000", web(65_537, many.as_str()), middle),
    ] {
        let tables = tables_of(&yaml)?;
        let mut lb = XdpProgram::load(Sizes::for_tables(&tables, 1_000_000))?;
        lb.apply(None, &tables)?;
        out.push((name.to_owned(), single_runs(&lb, syns(vip))?));
        if name == "new_flow_vips_1000" {
            out.push((
                "not_vip_vips_1000".to_owned(),
                ns(lb.time(not_vip, REPEAT)?),
            ));
        }
    }
    out.push((
        "bare_tx_single_rings".to_owned(),
        single_runs(bare, syns(VIP))?,
    ));
    Ok(out)
}

/// `{"name": ns, ...}` without pulling a JSON crate into the daemon's deps.
fn serde_json_like(pairs: &[(String, f64)], more: &[(&str, f64)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .chain(more.iter().copied())
        .map(|(k, v)| format!("\"{k}\": {v:.2}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}
