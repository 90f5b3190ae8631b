//! The guard through `BPF_PROG_TEST_RUN`: one described row per drop reason,
//! list matching for IPv4 and IPv6, every limit at its edge (exactly at,
//! one over), and the flow-table protection: a SYN alone never records a
//! flow. Every row also checks that the drop was counted under its reason,
//! globally and for its listener.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use balancer_common::{Counter, guard::UNKNOWN_VIP};

use crate::config::{self, Config};
use crate::dataplane::xdp::{
    Sizes, Verdict, XdpProgram, guard,
    packet::{ACK, Frame, Ip, SYN},
    plane::served_in,
    tables::{BackendIds, Tables},
    testkit::{assert_drops_have_reasons, counters, egress, flow_of, hop_of},
};

const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const PROXY4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 5, last)
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("ipv6")
}

/// Listeners: 0 web4 (xdp, own deny list and a ceiling of 3 SYNs), 1 dns4
/// (xdp, udp), 2 web6 (xdp, own allow list), 3 proxied (a proxy listener
/// the guard fronts). `guard` is the global section.
fn yaml(guard: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: web4
    address: 198.18.0.10:80
    protocol: tcp
    mode: xdp
    pool: web
    guard: {{ deny: [198.18.7.0/24], syn_rate: 1, syn_burst: 3 }}
  - {{ name: dns4, address: 198.18.0.10:53, protocol: udp, mode: xdp, pool: dns }}
  - name: web6
    address: \"[fd00::10]:80\"
    protocol: tcp
    mode: xdp
    pool: web6
    guard: {{ allow: [\"fd00:c::/32\"] }}
  - {{ name: proxied, address: 198.18.0.20:8080, protocol: tcp, mode: proxy, pool: web }}
pools:
  - name: web
    algorithm: maglev
    maglev_table_size: 251
    backends: [{{ address: 198.18.1.11:80 }}, {{ address: 198.18.1.12:80 }}]
  - name: dns
    algorithm: maglev
    backends: [{{ address: 198.18.1.11:53 }}]
  - name: web6
    algorithm: maglev
    backends: [{{ address: \"[fd00:1::11]:80\" }}]
xdp: {{ interface: eth0, forwarding: dsr }}
{guard}"
    )
}

struct Guarded {
    prog: XdpProgram,
    config: Config,
    ids: BackendIds,
    tables: Tables,
}

fn build(config: &Config, ids: &mut BackendIds) -> Tables {
    let served = served_in(config);
    let listeners: Vec<_> = served.iter().map(|&i| &config.listeners[i]).collect();
    let mut t =
        Tables::build(&listeners, &config.pools, &egress(config), ids, &hop_of).expect("tables");
    guard::dress(&mut t, &config.listeners, &served, &config.guard, None);
    t
}

impl Guarded {
    fn new(guard: &str) -> Self {
        let config = config::parse(&yaml(guard), "t.yaml").expect("config");
        let mut ids = BackendIds::default();
        let tables = build(&config, &mut ids);
        let mut prog = XdpProgram::load(Sizes::for_tables(&tables, 4096)).expect("load");
        prog.apply(None, &tables).expect("write");
        Self {
            prog,
            config,
            ids,
            tables,
        }
    }

    fn change(&mut self, guard: &str) {
        self.config = config::parse(&yaml(guard), "t.yaml").expect("config");
        let new = build(&self.config, &mut self.ids);
        self.prog.apply(Some(&self.tables), &new).expect("apply");
        self.tables = new;
    }

    fn run(&self, f: &Frame) -> Verdict {
        self.prog.run(&f.bytes()).expect("run").0
    }

    /// Runs `f`, expecting a drop under `reason`, counted for `listener`.
    fn dropped(&self, what: &str, f: &Frame, reason: Counter, listener: u32) {
        let before = counters(&self.prog)[reason as usize];
        let mine = self.prog.guard_counters(listener).expect("guard counters");
        assert_eq!(self.run(f), Verdict::Drop, "{what}");
        assert_eq!(
            counters(&self.prog)[reason as usize],
            before + 1,
            "{what}: counter {}",
            reason.name()
        );
        let i = reason.guard_index().expect("a guard reason") as usize;
        let after = self.prog.guard_counters(listener).expect("guard counters");
        assert_eq!(
            after[i],
            mine[i] + 1,
            "{what}: listener {listener}'s counter"
        );
    }

    fn admitted(&self, what: &str, f: &Frame) {
        assert!(
            matches!(self.run(f), Verdict::Tx | Verdict::Pass),
            "{what}: should be admitted"
        );
    }
}

fn syn4(src: Ipv4Addr, port: u16) -> Frame {
    Frame::tcp4(src, port, VIP4, 80, SYN)
}

#[expect(
    clippy::too_many_lines,
    reason = "a table reads best as one function, however long it gets"
)]
#[test]
fn stateless_drops_each_have_their_reason() {
    let g = Guarded::new("guard: { martians: [198.18.9.0/24] }\n");
    let c = v4(1);
    let mut fragment = Frame::udp4(c, 1, VIP4, 53);
    if let Ip::V4 { frag_offset, .. } = &mut fragment.ip {
        *frag_offset = 185;
    }
    let v6_to_web = |src: &str| Frame::tcp6(v6(src), 1000, VIP6, 80, SYN);
    let rows: Vec<(&str, Frame, Counter, u32)> = vec![
        (
            "syn+fin",
            Frame::tcp4(c, 1, VIP4, 80, SYN | FIN),
            Counter::GuardBadFlags,
            0,
        ),
        (
            "syn+rst",
            Frame::tcp4(c, 2, VIP4, 80, SYN | RST),
            Counter::GuardBadFlags,
            0,
        ),
        (
            "no flags",
            Frame::tcp4(c, 3, VIP4, 80, 0),
            Counter::GuardBadFlags,
            0,
        ),
        (
            "no flags to a proxy listener",
            Frame::tcp4(c, 3, PROXY4, 8080, 0),
            Counter::GuardBadFlags,
            3,
        ),
        (
            "source 0.0.0.0",
            syn4(Ipv4Addr::UNSPECIFIED, 4),
            Counter::GuardMartian,
            0,
        ),
        (
            "loopback source",
            syn4(Ipv4Addr::LOCALHOST, 5),
            Counter::GuardMartian,
            0,
        ),
        (
            "multicast source",
            syn4(Ipv4Addr::new(224, 0, 0, 1), 6),
            Counter::GuardMartian,
            0,
        ),
        (
            "broadcast source",
            syn4(Ipv4Addr::BROADCAST, 7),
            Counter::GuardMartian,
            0,
        ),
        (
            "the vip as its own source",
            syn4(VIP4, 8),
            Counter::GuardMartian,
            0,
        ),
        (
            "a configured martian",
            syn4(Ipv4Addr::new(198, 18, 9, 9), 9),
            Counter::GuardMartian,
            0,
        ),
        (
            "udp from a martian",
            Frame::udp4(Ipv4Addr::LOCALHOST, 9, VIP4, 53),
            Counter::GuardMartian,
            1,
        ),
        ("source ::", v6_to_web("::"), Counter::GuardMartian, 2),
        ("source ::1", v6_to_web("::1"), Counter::GuardMartian, 2),
        (
            "multicast ipv6 source",
            v6_to_web("ff02::1"),
            Counter::GuardMartian,
            2,
        ),
        (
            "ipv4-mapped source in ipv6",
            v6_to_web("::ffff:198.18.0.1"),
            Counter::GuardMartian,
            2,
        ),
        (
            "non-first fragment to an xdp vip address",
            fragment,
            Counter::GuardFragment,
            0,
        ),
        (
            "rst with no flow",
            Frame::tcp4(c, 10, VIP4, 80, RST | ACK),
            Counter::GuardStray,
            0,
        ),
        (
            "syn+ack with no flow",
            Frame::tcp4(c, 11, VIP4, 80, SYN | ACK),
            Counter::GuardStray,
            0,
        ),
    ];
    for (what, frame, reason, listener) in &rows {
        g.dropped(what, frame, *reason, *listener);
    }
    // The same kinds of packets that are valid go through.
    g.admitted("a plain syn", &syn4(c, 20));
    g.admitted("fin+ack", &Frame::tcp4(c, 21, VIP4, 80, FIN | ACK));
    g.admitted(
        "a syn to the proxy listener",
        &Frame::tcp4(c, 22, PROXY4, 8080, SYN),
    );
    assert_drops_have_reasons(&g.prog);

    // With `stray_tcp: forward`, a flow-less RST is placed by the ring.
    let g = Guarded::new("guard: { stray_tcp: forward }\n");
    assert_eq!(g.run(&Frame::tcp4(c, 10, VIP4, 80, RST)), Verdict::Tx);
}

#[test]
fn lists_match_ipv4_and_ipv6_globally_and_per_listener() {
    let mut g = Guarded::new("guard:\n  deny: [198.18.0.66/32, \"fd00:66::/32\", 198.18.6.0/24]\n");
    g.dropped(
        "global v4 deny",
        &syn4(Ipv4Addr::new(198, 18, 0, 66), 1),
        Counter::GuardDeny,
        0,
    );
    g.dropped(
        "global v4 deny, udp",
        &Frame::udp4(Ipv4Addr::new(198, 18, 0, 66), 1, VIP4, 53),
        Counter::GuardDeny,
        1,
    );
    g.admitted(
        "the neighbour of a denied /32",
        &syn4(Ipv4Addr::new(198, 18, 0, 67), 1),
    );
    g.dropped(
        "web4's own deny",
        &syn4(Ipv4Addr::new(198, 18, 7, 1), 1),
        Counter::GuardDeny,
        0,
    );
    g.admitted(
        "web4's deny does not apply to dns4",
        &Frame::udp4(Ipv4Addr::new(198, 18, 7, 1), 1, VIP4, 53),
    );
    let web6 = |src: &str| Frame::tcp6(v6(src), 1000, VIP6, 80, SYN);
    g.dropped("global v6 deny", &web6("fd00:66::5"), Counter::GuardDeny, 2);
    g.admitted("web6's allow list", &web6("fd00:c::1"));
    g.dropped(
        "outside web6's allow list",
        &web6("fd00:d::1"),
        Counter::GuardNotAllowed,
        2,
    );
    g.dropped(
        "a denied source to a proxy listener",
        &Frame::tcp4(Ipv4Addr::new(198, 18, 6, 1), 1, PROXY4, 8080, SYN),
        Counter::GuardDeny,
        3,
    );
    let before = counters(&g.prog)[Counter::PassListener as usize];
    assert_eq!(
        g.run(&Frame::tcp4(v4(1), 1, PROXY4, 8080, SYN)),
        Verdict::Pass,
        "an admitted packet for a proxy listener goes up to the kernel"
    );
    assert_eq!(
        counters(&g.prog)[Counter::PassListener as usize],
        before + 1
    );

    // A global allow list with a denied hole in it.
    g.change("guard:\n  allow: [198.18.5.0/24, \"fd00:c::/32\"]\n  deny: [198.18.5.66/32]\n");
    g.admitted("inside the allowed range", &syn4(v4(1), 2));
    g.dropped("the hole in it", &syn4(v4(66), 2), Counter::GuardDeny, 0);
    g.dropped(
        "outside it",
        &syn4(Ipv4Addr::new(198, 18, 0, 66), 2),
        Counter::GuardNotAllowed,
        0,
    );
    g.dropped(
        "outside it, to a proxy listener",
        &Frame::tcp4(Ipv4Addr::new(198, 18, 0, 66), 2, PROXY4, 8080, SYN),
        Counter::GuardNotAllowed,
        3,
    );
    assert_drops_have_reasons(&g.prog);
}

#[test]
fn a_list_change_cuts_the_recorded_flows_it_refuses() {
    let mut g = Guarded::new("");
    let bad = v4(77);
    let ack = Frame::tcp4(bad, 3000, VIP4, 80, ACK);
    assert_eq!(g.run(&ack), Verdict::Tx);
    assert!(g.prog.flow(&flow_of(&ack)).expect("lookup").is_some());
    let good = Frame::tcp4(v4(78), 3000, VIP4, 80, ACK);
    assert_eq!(g.run(&good), Verdict::Tx);
    g.change("guard: { deny: [198.18.5.77/32] }\n");
    assert_eq!(g.prog.flow(&flow_of(&ack)).expect("lookup"), None);
    assert!(g.prog.flow(&flow_of(&good)).expect("lookup").is_some());
    g.dropped(
        "the denied source's next packet",
        &ack,
        Counter::GuardDeny,
        0,
    );
    assert_eq!(g.run(&good), Verdict::Tx, "other flows carry on");
}

#[test]
fn per_source_limits_hold_at_their_burst_and_refuse_one_more() {
    let g = Guarded::new(
        "guard:\n  per_source: { syn_rate: 1, syn_burst: 2, packet_rate: 1, packet_burst: 6 }\n",
    );
    let a = v4(1);
    for port in 0..2 {
        g.admitted(&format!("syn {port} of a burst of 2"), &syn4(a, 100 + port));
    }
    g.dropped("one syn over", &syn4(a, 102), Counter::GuardSourceSyn, 0);
    // Not new flows, so the SYN bucket does not apply; the packet bucket
    // (6) has had 3.
    for port in 0..3 {
        g.admitted(
            "acks of a limited source",
            &Frame::tcp4(a, 200 + port, VIP4, 80, ACK),
        );
    }
    g.dropped(
        "one packet over",
        &Frame::tcp4(a, 203, VIP4, 80, ACK),
        Counter::GuardSourcePackets,
        0,
    );
    // Recorded flows count against the packet bucket too.
    g.dropped(
        "a recorded flow's packet",
        &Frame::tcp4(a, 200, VIP4, 80, ACK),
        Counter::GuardSourcePackets,
        0,
    );
    g.admitted("another source is not limited", &syn4(v4(2), 100));
    // IPv6 sources share a bucket per /64.
    let web6 = |src: &str, port| Frame::tcp6(v6(src), port, VIP6, 80, SYN);
    g.admitted("first of the /64", &web6("fd00:c::1", 1));
    g.admitted("second, other host, same /64", &web6("fd00:c::2", 2));
    g.dropped(
        "third from the /64",
        &web6("fd00:c::3", 3),
        Counter::GuardSourceSyn,
        2,
    );
    g.admitted("another /64", &web6("fd00:c:0:1::1", 4));
    let limited = g
        .prog
        .limited_sources(std::time::Duration::from_mins(1), 10)
        .expect("limited");
    let sources: Vec<IpAddr> = limited.iter().map(|l| l.source).collect();
    assert_eq!(limited[0].source, IpAddr::V4(a), "{limited:?}");
    assert_eq!(limited[0].drops, 3);
    assert!(sources.contains(&IpAddr::V6(v6("fd00:c::"))), "{sources:?}");
    assert_eq!(sources.len(), 2, "{limited:?}");
    assert_drops_have_reasons(&g.prog);
}

#[test]
fn the_listener_ceiling_drops_syns_beyond_it_and_keeps_established_flows() {
    let g = Guarded::new("");
    // Distinct sources, so only the listener's ceiling (burst 3) applies.
    for i in 0..3 {
        g.admitted(&format!("syn {i} of the ceiling"), &syn4(v4(10 + i), 1));
    }
    g.dropped(
        "one over the ceiling",
        &syn4(v4(13), 1),
        Counter::GuardListenerSyn,
        0,
    );
    g.admitted(
        "an ack still gets in",
        &Frame::tcp4(v4(13), 1, VIP4, 80, ACK),
    );
    g.admitted(
        "other listeners are not limited",
        &Frame::tcp6(v6("fd00:c::1"), 1, VIP6, 80, SYN),
    );
}

#[test]
fn a_syn_alone_never_records_a_flow() {
    let g = Guarded::new("");
    let web6 = |port| Frame::tcp6(v6("fd00:c::9"), port, VIP6, 80, SYN);
    for port in 1000..1500 {
        assert_eq!(g.run(&web6(port)), Verdict::Tx);
        assert_eq!(g.prog.flow(&flow_of(&web6(port))).expect("lookup"), None);
    }
    let c = counters(&g.prog);
    assert_eq!(c[Counter::FlowSyn as usize], 500);
    assert_eq!(c[Counter::FlowNew as usize], 0);
    // Turned off, the SYN records its flow.
    let g = Guarded::new("guard: { flow_on_ack: false }\n");
    assert_eq!(g.run(&web6(1000)), Verdict::Tx);
    assert!(
        g.prog
            .flow(&flow_of(&web6(1000)))
            .expect("lookup")
            .is_some()
    );
}

#[test]
fn flows_of_an_older_program_count_under_the_unknown_listener() {
    let mut g = Guarded::new("guard:\n  per_source: { packet_rate: 1, packet_burst: 1 }\n");
    let ack = Frame::tcp4(v4(1), 1, VIP4, 80, ACK);
    assert_eq!(g.run(&ack), Verdict::Tx);
    // What a flow recorded before the `vip` field existed looks like.
    let flow = flow_of(&ack);
    let backend = g.prog.flow(&flow).expect("lookup").expect("recorded");
    g.prog.put_flow(&flow, backend, 0).expect("rewrite");
    g.dropped(
        "over its packet rate",
        &ack,
        Counter::GuardSourcePackets,
        UNKNOWN_VIP,
    );
}
