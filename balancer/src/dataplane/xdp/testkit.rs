//! Shared set-up for the balancing packet tests: one config with TCP and
//! UDP VIPs over IPv4 and IPv6, tables built from it with recognisable
//! backend MACs, and helpers that ask the proxy plane for the expected
//! backend of a flow. Compiled for tests, and behind the `testkit` feature
//! for the benchmark examples, so they build tables as the tests do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use balancer_common::{Counter, FlowTuple};

use super::{
    Sizes, XdpProgram, guard,
    keys::mapped,
    packet::{Frame, Ip, L4, LB_MAC},
    tables::{BackendIds, Egress, Hop, Tables},
};
use crate::{
    config::{self, Config, model::Forwarding},
    runtime::PoolState,
};

/// The IPv4 client of the test flows.
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The IPv4 VIP of [`yaml`].
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// An IPv4 address that is no VIP.
pub const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
/// The IPv6 client of the test flows.
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1);
/// The IPv6 VIP of [`yaml`].
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
/// The balancer's IPv4 tunnel source.
pub const TUN4: [u8; 4] = [198, 18, 0, 2];
/// The balancer's IPv6 tunnel source.
pub const TUN6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// The XDP interface's MTU.
pub const MTU: u32 = 1500;

/// TCP and UDP VIPs over IPv4 and IPv6 and a drained pool; `weights` are
/// the web pool's three backends'.
#[must_use]
pub fn yaml(forwarding: &str, weights: [u32; 3]) -> String {
    let [a, b, c] = weights;
    format!(
        "version: 1
listeners:
  - {{ name: web4, address: 198.18.0.10:80, protocol: tcp, mode: xdp, pool: web }}
  - {{ name: dns4, address: 198.18.0.10:53, protocol: udp, mode: xdp, pool: dns }}
  - {{ name: web6, address: \"[fd00::10]:80\", protocol: tcp, mode: xdp, pool: web6 }}
  - {{ name: dns6, address: \"[fd00::10]:53\", protocol: udp, mode: xdp, pool: dns6 }}
  - {{ name: drained, address: 198.18.0.10:8080, protocol: tcp, mode: xdp, pool: drained }}
pools:
  - name: web
    algorithm: maglev
    maglev_table_size: 251
    backends:
      - {{ address: 198.18.1.11:80, weight: {a} }}
      - {{ address: 198.18.1.12:80, weight: {b} }}
      - {{ address: 198.18.1.13:80, weight: {c} }}
  - name: dns
    algorithm: maglev
    backends: [{{ address: 198.18.1.11:53 }}, {{ address: 198.18.1.12:53 }}]
  - name: web6
    algorithm: maglev
    backends: [{{ address: \"[fd00:1::11]:80\" }}, {{ address: \"[fd00:1::12]:80\" }}]
  - name: dns6
    algorithm: maglev
    backends: [{{ address: \"[fd00:1::11]:53\" }}, {{ address: \"[fd00:1::12]:53\" }}]
  - name: drained
    algorithm: maglev
    backends: [{{ address: 198.18.1.11:8080, weight: 0 }}]
xdp: {{ interface: eth0, forwarding: {forwarding} }}
"
    )
}

/// A backend's next-hop MAC in these tests: 02:be:00:00:00:<last byte>.
#[must_use]
pub fn mac_of(ip: IpAddr) -> [u8; 6] {
    [0x02, 0xbe, 0, 0, 0, mapped(ip)[15]]
}

/// A loaded program with the config and tables it was written from.
pub struct Lb {
    /// The program.
    pub prog: XdpProgram,
    /// The config the tables came from.
    pub config: Config,
    /// Backend ids, kept across changes as the daemon keeps them.
    pub ids: BackendIds,
    /// The tables written last.
    pub tables: Tables,
}

impl Lb {
    /// Moves the program to `yaml`, as a reload would.
    pub fn change(&mut self, yaml: &str) {
        self.config = config::parse(yaml, "t.yaml").expect("config");
        let new = tables(&self.config, &mut self.ids);
        self.prog.apply(Some(&self.tables), &new).expect("apply");
        self.tables = new;
    }
}

/// A backend on the XDP interface's own link.
#[must_use]
pub fn hop_of(ip: IpAddr) -> Option<Hop> {
    Some(Hop {
        mac: mac_of(ip),
        src_mac: LB_MAC,
        tx_port: 0,
    })
}

/// The egress facts of these tests, for `config`'s forwarding mode.
#[must_use]
pub fn egress(config: &Config) -> Egress {
    Egress {
        forwarding: config
            .xdp
            .as_ref()
            .map_or(Forwarding::Dsr, |x| x.forwarding),
        mtu: MTU,
        ports: Vec::new(),
        ipip_src4: TUN4,
        ipip_src6: TUN6,
    }
}

/// The tables of `config` as the daemon writes them, guard included, with
/// every listener served by XDP.
pub fn tables(config: &Config, ids: &mut BackendIds) -> Tables {
    let listeners: Vec<_> = config.listeners.iter().collect();
    let mut t =
        Tables::build(&listeners, &config.pools, &egress(config), ids, &hop_of).expect("tables");
    let served: Vec<usize> = (0..listeners.len()).collect();
    guard::dress(&mut t, &config.listeners, &served, &config.guard, None);
    t
}

/// The program loaded with [`yaml`]'s tables, equal weights.
#[must_use]
pub fn setup(forwarding: &str) -> Lb {
    let config = config::parse(&yaml(forwarding, [100, 100, 100]), "t.yaml").expect("config");
    let mut ids = BackendIds::default();
    let t = tables(&config, &mut ids);
    let mut prog = XdpProgram::load(Sizes::for_tables(&t, 4096)).expect("load");
    prog.apply(None, &t).expect("write");
    Lb {
        prog,
        config,
        ids,
        tables: t,
    }
}

/// The flow of a crafted frame, as the program keys it.
#[must_use]
pub fn flow_of(f: &Frame) -> FlowTuple {
    let (src, dst) = match &f.ip {
        Ip::V4 { src, dst, .. } => (IpAddr::V4(*src), IpAddr::V4(*dst)),
        Ip::V6 { src, dst } => (IpAddr::V6(*src), IpAddr::V6(*dst)),
    };
    let (sp, dp, proto) = match f.l4 {
        L4::Tcp { src, dst, .. } => (src, dst, 6),
        L4::Udp { src, dst } => (src, dst, 17),
        L4::Other(p) => (0, 0, p),
    };
    FlowTuple {
        src: mapped(src),
        dst: mapped(dst),
        src_port: sp,
        dst_port: dp,
        protocol: proto,
        pad: [0; 3],
    }
}

/// The backend the proxy plane picks for `flow` on listener `listener`.
#[must_use]
pub fn proxy_pick(config: &Config, listener: usize, flow: &FlowTuple) -> IpAddr {
    let pool_index = config.listeners[listener]
        .pool
        .expect("a listener with a pool");
    let pool = PoolState::new(&config.pools[pool_index]);
    let i = pool.pick(flow, &[]).expect("a backend");
    pool.backends[i].address.ip()
}

/// `frame` as DSR sends it to `backend`: only the MACs rewritten.
#[must_use]
pub fn dsr_expected(frame: &[u8], backend: IpAddr) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&mac_of(backend));
    out[6..12].copy_from_slice(&LB_MAC);
    out
}

/// The program's counters, by [`Counter`] index.
#[must_use]
pub fn counters(prog: &XdpProgram) -> [u64; Counter::COUNT as usize] {
    prog.counters().expect("counters")
}

/// Every drop verdict was counted under exactly one reason.
pub fn assert_drops_have_reasons(prog: &XdpProgram) {
    let c = counters(prog);
    let reasons: u64 = Counter::ALL
        .iter()
        .filter(|k| k.is_drop_reason())
        .map(|&k| c[k as usize])
        .sum();
    assert_eq!(
        reasons,
        c[Counter::VerdictDrop as usize],
        "drops without a reason"
    );
}
