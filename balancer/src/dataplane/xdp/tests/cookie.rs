//! SYN cookies answered by the program, through `BPF_PROG_TEST_RUN`: SYNs
//! within a listener's threshold go up, those beyond it come back as the
//! SYN-ACK the kernel would send in cookie mode (addresses and ports
//! turned around, the ACK of the client's sequence, our MSS, and the
//! client's window scale and SACK in the timestamp's low bits), with valid
//! checksums, for IPv4 and IPv6; and a client without timestamps is
//! granted neither, since the kernel could not recover them.

use std::net::{Ipv4Addr, Ipv6Addr};

use balancer_common::{
    Counter,
    guard::{COOKIE_TS_BITS, Cookie, GUARD_COOKIE_SACK, GUARD_COOKIE_TS, GUARD_COOKIE_WSCALE},
};

use crate::config;
use crate::dataplane::xdp::{
    Sizes, Verdict, XdpProgram,
    cookies::Cookies,
    guard,
    packet::{CLIENT_MAC, LB_MAC, checksum},
    plane::served_in,
    tables::{BackendIds, Tables},
    testkit::{counters, egress, hop_of},
};

const YAML: &str = "version: 1
listeners:
  - { name: web, address: 198.18.0.20:8080, protocol: tcp, mode: proxy, pool: web, guard: { syn_cookies_above: 1 } }
  - { name: web6, address: \"[fd00::20]:8080\", protocol: tcp, mode: proxy, pool: web, guard: { syn_cookies_above: 1 } }
  - { name: plain, address: 198.18.0.20:9090, protocol: tcp, mode: proxy, pool: web }
pools:
  - name: web
    algorithm: round_robin
    backends: [{ address: 198.18.1.11:80 }]
xdp: { interface: eth0, forwarding: dsr }
";

const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
const LISTENER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 5, 0, 0, 0, 0, 0, 1);
const LISTENER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x20);
const CLIENT_SEQ: u32 = 0x1234_5678;
const TSVAL: u32 = 0x0abc_def0;
/// What Linux offers: MSS 1460, SACK permitted, timestamps, NOP, window
/// scale 7.
const LINUX_OPTIONS: [u8; 20] = [
    2, 4, 5, 180, 4, 2, 8, 10, 0x0a, 0xbc, 0xde, 0xf0, 0, 0, 0, 0, 1, 3, 3, 7,
];

fn all_on() -> Cookies {
    Cookies {
        cookie: Cookie {
            mss: 1460,
            wscale: 9,
            pad: 0,
        },
        flags: GUARD_COOKIE_TS | GUARD_COOKIE_SACK | GUARD_COOKIE_WSCALE,
    }
}

fn load(cookies: Option<Cookies>) -> XdpProgram {
    let config = config::parse(YAML, "t.yaml").expect("config");
    let served = served_in(&config);
    let listeners: Vec<_> = served.iter().map(|&i| &config.listeners[i]).collect();
    let mut ids = BackendIds::default();
    let mut t: Tables = Tables::build(
        &listeners,
        &config.pools,
        &egress(&config),
        &mut ids,
        &hop_of,
    )
    .expect("tables");
    guard::dress(&mut t, &config.listeners, &served, &config.guard, cookies);
    let mut prog = XdpProgram::load(Sizes::for_tables(&t, 1024)).expect("load");
    prog.apply(None, &t).expect("write");
    prog
}

/// A SYN from the client to `port` with TCP `options` (a multiple of 4).
fn syn(v6: bool, port: u16, options: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40_000u16.to_be_bytes());
    tcp.extend_from_slice(&port.to_be_bytes());
    tcp.extend_from_slice(&CLIENT_SEQ.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.push((((20 + options.len()) / 4) << 4) as u8);
    tcp.push(0x02);
    tcp.extend_from_slice(&64_240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(options);
    let mut f = Vec::new();
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    let len = tcp.len() as u16;
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        f.extend_from_slice(&CLIENT6.octets());
        f.extend_from_slice(&LISTENER6.octets());
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&(20 + len).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&CLIENT4.octets());
        f.extend_from_slice(&LISTENER4.octets());
        let c = checksum(&[&f[14..34]]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let at = f.len();
    f.extend_from_slice(&tcp);
    let c = tcp_checksum(&f, v6, at);
    f[at + 16..at + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// The TCP checksum of the segment at `at` (0 when the field holds a
/// correct one).
fn tcp_checksum(f: &[u8], v6: bool, at: usize) -> u16 {
    let seg = &f[at..];
    let len = (seg.len() as u16).to_be_bytes();
    let addrs = if v6 { &f[22..54] } else { &f[26..34] };
    checksum(&[addrs, &[0, 6], &len, seg])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Runs SYNs until one is answered (the first is within the threshold of
/// one a second); returns the answer.
fn answered(prog: &XdpProgram, frame: &[u8]) -> Vec<u8> {
    let (first, _) = prog.run(frame).expect("run");
    assert_eq!(
        first,
        Verdict::Pass,
        "within the threshold: up to the socket"
    );
    let before = counters(prog)[Counter::SynCookie as usize];
    let (v, out) = prog.run(frame).expect("run");
    assert_eq!(v, Verdict::Tx, "beyond the threshold: answered here");
    assert_eq!(counters(prog)[Counter::SynCookie as usize], before + 1);
    out
}

#[test]
fn a_syn_beyond_the_threshold_gets_the_kernels_cookie_syn_ack() {
    let prog = load(Some(all_on()));
    let out = answered(&prog, &syn(false, 8080, &LINUX_OPTIONS));
    assert_eq!(out.len(), 14 + 20 + 40);
    assert_eq!((&out[0..6], &out[6..12]), (&CLIENT_MAC[..], &LB_MAC[..]));
    assert_eq!(checksum(&[&out[14..34]]), 0, "IPv4 header checksum");
    assert_eq!(u16::from_be_bytes([out[16], out[17]]), 60, "total length");
    assert_eq!(&out[26..30], &LISTENER4.octets(), "from the listener");
    assert_eq!(&out[30..34], &CLIENT4.octets(), "to the client");
    let t = &out[34..];
    assert_eq!(tcp_checksum(&out, false, 34), 0, "TCP checksum");
    assert_eq!(
        (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]])
        ),
        (8080, 40_000)
    );
    assert_eq!(be32(&t[8..12]), CLIENT_SEQ + 1, "acknowledges the SYN");
    assert_eq!((t[12], t[13]), (0xa0, 0x12), "40-byte header, SYN+ACK");
    assert_ne!(be32(&t[4..8]), 0, "the cookie");
    let o = &t[20..40];
    assert_eq!(&o[0..4], &[2, 4, 5, 180], "our MSS (MTU 1500)");
    assert_eq!(&o[4..8], &[4, 2, 8, 10], "SACK permitted, then timestamps");
    let tsval = be32(&o[8..12]);
    assert_eq!(
        tsval & ((1 << COOKIE_TS_BITS) - 1),
        7 | 1 << 4,
        "the client's window scale and SACK in the low bits"
    );
    assert_eq!(be32(&o[12..16]), TSVAL, "echoes the client's timestamp");
    assert_eq!(&o[16..20], &[1, 3, 3, 9], "our window scale");
}

#[test]
fn ipv6_syns_are_answered_too() {
    let prog = load(Some(all_on()));
    let out = answered(&prog, &syn(true, 8080, &LINUX_OPTIONS));
    assert_eq!(out.len(), 14 + 40 + 40);
    assert_eq!(u16::from_be_bytes([out[18], out[19]]), 40, "payload length");
    assert_eq!(&out[22..38], &LISTENER6.octets());
    assert_eq!(&out[38..54], &CLIENT6.octets());
    assert_eq!(tcp_checksum(&out, true, 54), 0, "TCP checksum");
    assert_eq!(&out[74..78], &[2, 4, 5, 160], "IPv6 MSS: 20 bytes less");
}

#[test]
fn without_timestamps_neither_window_scale_nor_sack_is_granted() {
    let prog = load(Some(all_on()));
    // MSS, SACK permitted, NOP, window scale: no timestamp.
    let out = answered(
        &prog,
        &syn(false, 8080, &[2, 4, 5, 180, 4, 2, 1, 1, 1, 3, 3, 7]),
    );
    assert_eq!(&out[54..58], &[2, 4, 5, 180]);
    assert!(
        out[58..74].iter().all(|b| *b == 1),
        "NOPs only: {:?}",
        &out[54..74]
    );
    // Likewise when the host has timestamps with offsets.
    let prog = load(Some(Cookies {
        flags: GUARD_COOKIE_SACK | GUARD_COOKIE_WSCALE,
        ..all_on()
    }));
    let out = answered(&prog, &syn(false, 8080, &LINUX_OPTIONS));
    assert!(
        out[58..74].iter().all(|b| *b == 1),
        "NOPs only: {:?}",
        &out[54..74]
    );
}

#[test]
fn syns_go_up_without_a_threshold_or_when_the_host_refuses_cookies() {
    let prog = load(Some(all_on()));
    let plain = syn(false, 9090, &LINUX_OPTIONS);
    for _ in 0..3 {
        assert_eq!(prog.run(&plain).expect("run").0, Verdict::Pass);
    }
    let off = load(None);
    let web = syn(false, 8080, &LINUX_OPTIONS);
    for _ in 0..3 {
        assert_eq!(off.run(&web).expect("run").0, Verdict::Pass);
    }
    assert_eq!(counters(&off)[Counter::SynCookie as usize], 0);
}
