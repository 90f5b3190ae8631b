//! Measures the guard's cost per packet with `BPF_PROG_TEST_RUN`, one case
//! per verdict, beside a bare `XDP_DROP` program in the same run, and prints
//! the figures as JSON. Given a veth pair (`SEND RECEIVE`), it also floods
//! `RECEIVE` with spoofed SYNs as live frames sent out of `SEND`, once with
//! the balancer attached on `RECEIVE` (its listener ceiling absorbing the
//! flood) and once with the bare drop program, and reports the rates. Run by
//! `cargo xtask bench guard` (needs root, and the `testkit` feature); not a
//! test.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use balancer::{
    config::{self, Config},
    dataplane::xdp::{
        Sizes, XdpProgram, guard,
        packet::{ACK, Frame, Ip, SYN},
        plane::served_in,
        tables::{BackendIds, Tables},
        testkit,
    },
};

const REPEAT: u32 = 1_000_000;
const LIVE: u32 = 5_000_000;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A deny list of 1,000 host entries plus the one the deny case hits, a
/// generous per-source SYN limit every case passes, and on port 80 a
/// listener ceiling that absorbs the live flood.
fn yaml(per_source: &str) -> String {
    let mut deny: Vec<String> = (0..1000)
        .map(|i| format!("198.19.{}.{}/32", i / 250, i % 250 + 1))
        .collect();
    deny.push("198.18.66.0/24".to_owned());
    format!(
        "version: 1
listeners:
  - {{ name: flooded, address: 198.18.100.10:80, protocol: tcp, mode: xdp, pool: web, guard: {{ syn_rate: 1000, syn_burst: 1000 }} }}
  - {{ name: open, address: 198.18.100.10:81, protocol: tcp, mode: xdp, pool: web81 }}
  - {{ name: tight, address: 198.18.100.10:82, protocol: tcp, mode: xdp, pool: web82, guard: {{ syn_rate: 1, syn_burst: 1 }} }}
  - {{ name: web6, address: \"[fd00::10]:80\", protocol: tcp, mode: xdp, pool: web6 }}
pools:
  - {{ name: web, algorithm: maglev, backends: [{{ address: 198.18.0.11:80 }}, {{ address: 198.18.0.12:80 }}] }}
  - {{ name: web81, algorithm: maglev, backends: [{{ address: 198.18.0.11:81 }}, {{ address: 198.18.0.12:81 }}] }}
  - {{ name: web82, algorithm: maglev, backends: [{{ address: 198.18.0.11:82 }}] }}
  - {{ name: web6, algorithm: maglev, backends: [{{ address: \"[fd00:1::11]:80\" }}] }}
xdp: {{ interface: eth0, forwarding: dsr, flow_table_size: 1000000 }}
guard:
  deny: [{}]
  per_source: {per_source}
",
        deny.join(", ")
    )
}

fn load(yaml: &str) -> anyhow::Result<XdpProgram> {
    let cfg: Config = config::parse(yaml, "guard_bench")?;
    let served = served_in(&cfg);
    let listeners: Vec<_> = served.iter().map(|&i| &cfg.listeners[i]).collect();
    let mut tables = Tables::build(
        &listeners,
        &cfg.pools,
        &testkit::egress(&cfg),
        &mut BackendIds::default(),
        &testkit::hop_of,
    )?;
    guard::dress(&mut tables, &cfg.listeners, &served, &cfg.guard, None);
    let mut prog = XdpProgram::load(Sizes::for_tables(&tables, 1_000_000))?;
    prog.apply(None, &tables)?;
    Ok(prog)
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn main() -> anyhow::Result<()> {
    let open = load(&yaml("{ syn_rate: 100000000, syn_burst: 100000000 }"))?;
    let strict = load(&yaml("{ syn_rate: 1, syn_burst: 1 }"))?;
    let bare = XdpProgram::load_bare_drop()?;
    let syn = |src, port| Frame::tcp4(src, 40_000, VIP, port, SYN).bytes();
    let mut fragment = Frame::udp4(CLIENT, 40_000, VIP, 53);
    if let Ip::V4 { frag_offset, .. } = &mut fragment.ip {
        *frag_offset = 185;
    }
    let established = Frame::tcp4(CLIENT, 40_001, VIP, 81, ACK).bytes();
    open.run(&established)?; // records the flow
    let cases: Vec<(&str, &XdpProgram, Vec<u8>)> = vec![
        ("bare_drop", &bare, syn(CLIENT, 80)),
        (
            "bad_flags",
            &open,
            Frame::tcp4(CLIENT, 1, VIP, 81, SYN | 1).bytes(),
        ),
        ("martian", &open, syn(Ipv4Addr::LOCALHOST, 81)),
        ("deny_list", &open, syn(Ipv4Addr::new(198, 18, 66, 1), 81)),
        ("source_syn_limit", &strict, syn(CLIENT, 81)),
        ("listener_ceiling", &open, syn(CLIENT, 82)),
        (
            "stray_rst",
            &open,
            Frame::tcp4(CLIENT, 2, VIP, 81, 0x04).bytes(),
        ),
        ("fragment", &open, fragment.bytes()),
        ("admitted_syn_v4", &open, syn(CLIENT, 81)),
        (
            "admitted_syn_v6",
            &open,
            Frame::tcp6(
                "fd00:c::1".parse::<Ipv6Addr>()?,
                40_000,
                "fd00::10".parse()?,
                80,
                SYN,
            )
            .bytes(),
        ),
        ("established_ack", &open, established.clone()),
    ];
    let mut out = Vec::new();
    for (name, prog, frame) in &cases {
        // Prime limits so the repeated runs measure the drop path.
        prog.run(frame)?;
        out.push(format!("\"{name}\": {:.2}", ns(prog.time(frame, REPEAT)?)));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [send, receive] = args.as_slice() {
        let ifindex: u32 = std::fs::read_to_string(format!("/sys/class/net/{send}/ifindex"))?
            .trim()
            .parse()?;
        let peer_mac = std::fs::read_to_string(format!("/sys/class/net/{receive}/address"))?;
        let flood = XdpProgram::load_syn_flood()?;
        let mut template = Frame::tcp4(Ipv4Addr::new(198, 18, 128, 1), 1024, VIP, 80, SYN).bytes();
        for (i, b) in peer_mac.trim().split(':').enumerate().take(6) {
            template[i] = u8::from_str_radix(b, 16)?;
        }
        let mpps = |d: Duration| f64::from(LIVE) / d.as_secs_f64() / 1e6;
        let mut balancer = load(&yaml("{ syn_rate: 1000, syn_burst: 1000 }"))?;
        balancer.attach(receive)?;
        let before = balancer.counters()?;
        let rate = mpps(flood.live(&template, ifindex, LIVE)?);
        let after = balancer.counters()?;
        drop(balancer);
        let seen = |c: balancer_common::Counter| after[c as usize] - before[c as usize];
        out.push(format!("\"live_balancer_mpps\": {rate:.3}"));
        out.push(format!(
            "\"live_balancer_ceiling_drops\": {}",
            seen(balancer_common::Counter::GuardListenerSyn)
                + seen(balancer_common::Counter::GuardSourceSyn)
        ));
        let mut bare = XdpProgram::load_bare_drop()?;
        bare.attach(receive)?;
        let rate = mpps(flood.live(&template, ifindex, LIVE)?);
        drop(bare);
        out.push(format!("\"live_bare_drop_mpps\": {rate:.3}"));
    }
    println!("{{{}}}", out.join(", "));
    Ok(())
}
