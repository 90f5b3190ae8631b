//! Shared set-up for the balancing packet tests: one config with TCP and
//! UDP VIPs over IPv4 and IPv6, tables built from it with recognisable
//! backend MACs, and helpers that ask the proxy plane for the expected
//! backend of a flow.

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

pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
pub const TUN4: [u8; 4] = [198, 18, 0, 2];
pub const TUN6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const MTU: u32 = 1500;

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
pub fn mac_of(ip: IpAddr) -> [u8; 6] {
    [0x02, 0xbe, 0, 0, 0, mapped(ip)[15]]
}

pub struct Lb {
    pub prog: XdpProgram,
    pub config: Config,
    pub ids: BackendIds,
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
#[allow(clippy::unnecessary_wraps)]
pub fn hop_of(ip: IpAddr) -> Option<Hop> {
    Some(Hop {
        mac: mac_of(ip),
        src_mac: LB_MAC,
        tx_port: 0,
    })
}

/// The egress facts of these tests, for `config`'s forwarding mode.
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
pub fn proxy_pick(config: &Config, listener: usize, flow: &FlowTuple) -> IpAddr {
    let pool = PoolState::new(&config.pools[config.listeners[listener].pool]);
    let i = pool.pick(flow, &[]).expect("a backend");
    pool.backends[i].address.ip()
}

pub fn dsr_expected(frame: &[u8], backend: IpAddr) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&mac_of(backend));
    out[6..12].copy_from_slice(&LB_MAC);
    out
}

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
