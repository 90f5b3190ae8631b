//! Test traffic for the guard: a SYN flood from random sources in
//! `198.18.128.0/17` and `fd00::/8`, sent as live frames (`BPF_PROG_TEST_RUN`
//! with `BPF_F_TEST_XDP_LIVE_FRAMES`) out of an interface; and a count of
//! the flood's entries in a balancer's pinned flow table. Used by the
//! namespace flood test and `cargo xtask bench guard`; needs root.
//!
//! ```text
//! syn_flood send IFACE DST_MAC VIP4 VIP6 PORT SECONDS MAX_PACKETS
//! syn_flood flows PIN_DIR
//! ```
//! `send` alternates IPv4 and IPv6 batches until `SECONDS` pass or
//! `MAX_PACKETS` are sent, and prints `{"sent": N, "seconds": S, "pps": R}`.
//! `flows` prints `{"flows": N, "flood_flows": M}`: flood entries are those
//! from 198.18.128.0/17 or from any IPv6 source.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use aya::maps::{HashMap, Map, MapData};
use balancer::dataplane::xdp::{
    XdpProgram,
    packet::{Frame, SYN},
    program::unmapped,
};
use balancer_common::maps::{FLOWS_MAP, FlowKey, FlowValue};

const BATCH: u32 = 100_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("send") if args.len() == 8 => send(&args[1..]),
        Some("flows") if args.len() == 2 => flows(&args[1]),
        _ => bail!(
            "usage: syn_flood send IFACE DST_MAC VIP4 VIP6 PORT SECONDS MAX_PACKETS | syn_flood flows PIN_DIR"
        ),
    }
}

fn mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        bail!("`{text}` is not a MAC address");
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).with_context(|| format!("`{text}` is not a MAC address"))?;
    }
    Ok(out)
}

fn send(a: &[String]) -> anyhow::Result<()> {
    let ifname = &a[0];
    let dst_mac = mac(&a[1])?;
    let vip4: Ipv4Addr = a[2].parse().context("VIP4")?;
    let vip6: Ipv6Addr = a[3].parse().context("VIP6")?;
    let port: u16 = a[4].parse().context("PORT")?;
    let seconds: f64 = a[5].parse().context("SECONDS")?;
    let max: u64 = a[6].parse().context("MAX_PACKETS")?;
    // The program rewrites the sources; these only give the layout.
    let frame = |f: Frame| {
        let mut b = f.bytes();
        b[..6].copy_from_slice(&dst_mac);
        b
    };
    let v4 = frame(Frame::tcp4(
        Ipv4Addr::new(198, 18, 128, 1),
        1024,
        vip4,
        port,
        SYN,
    ));
    let v6 = frame(Frame::tcp6("fd00::1".parse()?, 1024, vip6, port, SYN));
    let ifindex: u32 = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
        .with_context(|| format!("interface `{ifname}`"))?
        .trim()
        .parse()?;
    let prog = XdpProgram::load_syn_flood()?;
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut turn = 0u32;
    while sent < max && start.elapsed() < deadline {
        let n = u32::try_from((max - sent).min(u64::from(BATCH))).unwrap_or(BATCH);
        let f = if turn.is_multiple_of(2) { &v4 } else { &v6 };
        prog.live(f, ifindex, n)?;
        sent += u64::from(n);
        turn += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\": {sent}, \"seconds\": {secs:.3}, \"pps\": {:.0}}}",
        sent as f64 / secs
    );
    Ok(())
}

fn flows(pin_dir: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(pin_dir).join(FLOWS_MAP);
    let data = MapData::from_pin(&path).with_context(|| format!("{}", path.display()))?;
    let map: HashMap<MapData, FlowKey, FlowValue> = HashMap::try_from(Map::LruHashMap(data))?;
    let (mut total, mut flood) = (0u64, 0u64);
    for (k, _) in map.iter().filter_map(Result::ok) {
        total += 1;
        let from_flood = match unmapped(k.src) {
            IpAddr::V4(a) => a.octets()[..2] == [198, 18] && a.octets()[2] >= 128,
            IpAddr::V6(_) => true,
        };
        if from_flood {
            flood += 1;
        }
    }
    println!("{{\"flows\": {total}, \"flood_flows\": {flood}}}");
    Ok(())
}
