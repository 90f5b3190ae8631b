//! `balancer explain`: which backend a flow reaches, asked of the real XDP
//! program (a crafted packet through `BPF_PROG_TEST_RUN`) and of the proxy
//! plane's selector side by side; and, for a config change, how many Maglev
//! ring slots move per backend. Nothing here touches a running daemon.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
};

use crate::{
    config::{
        Config,
        model::{Forwarding, Listener, Protocol},
    },
    dataplane::xdp::{
        Sizes, Verdict, XdpError, XdpProgram,
        packet::{ACK, Frame, LB_MAC},
        plane::qualifies,
        tables::{BackendIds, Egress, Hop, Tables, TablesError},
    },
    runtime::{PoolState, flow_tuple},
    select::MaglevTable,
};

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No listener serves the destination.
    #[error("no listener serves {protocol} `{destination}` in this config")]
    NoListener {
        /// Protocol asked about.
        protocol: Protocol,
        /// Destination asked about.
        destination: SocketAddr,
    },
    /// The listener routes by request (HTTP): no flow decides its backend.
    #[error(
        "listener `{0}` routes each HTTP request by its routes; a flow alone does not decide the backend"
    )]
    Routed(String),
    /// Source and destination differ in address family.
    #[error("source `{0}` and destination `{1}` are of different address families")]
    Family(SocketAddr, SocketAddr),
    /// The program could not be built or run.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// The tables could not be built.
    #[error(transparent)]
    Tables(#[from] TablesError),
}

/// Answers "which backend does this flow reach?" as a few lines of text.
pub fn flow(
    config: &Config,
    protocol: Protocol,
    source: SocketAddr,
    destination: SocketAddr,
) -> Result<String, ExplainError> {
    if source.is_ipv4() != destination.is_ipv4() {
        return Err(ExplainError::Family(source, destination));
    }
    let (index, listener) = config
        .listeners
        .iter()
        .enumerate()
        .find(|(_, l)| l.address == destination && l.protocol == protocol)
        .ok_or(ExplainError::NoListener {
            protocol,
            destination,
        })?;
    let pool_index = listener
        .pool
        .filter(|_| listener.http.is_none())
        .ok_or_else(|| ExplainError::Routed(listener.name.clone()))?;
    let pool = PoolState::new(&config.pools[pool_index]);
    let proto_number = if protocol == Protocol::Tcp { 6 } else { 17 };
    let proxy = pool
        .pick(&flow_tuple(source, destination, proto_number), &[])
        .map(|i| pool.backends[i].address);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flow {protocol} {source} -> {destination}: listener `{}` (#{index}, mode {}), pool `{}` ({})",
        listener.name, listener.mode, pool.name, pool.algorithm
    );
    if !listener.sni_routes.is_empty() {
        let _ = writeln!(
            out,
            "  (routed by SNI first: {} routes; this pool takes ClientHellos without a server name or with one no route matches)",
            listener.sni_routes.len()
        );
    }
    match proxy {
        Some(b) => {
            let _ = writeln!(out, "  proxy plane picks  {b}");
        }
        None => {
            let _ = writeln!(out, "  proxy plane picks  nothing (no backend with weight)");
        }
    }
    if qualifies(config, listener) {
        let (verdict, backend) = xdp_pick(config, listener, protocol, source, destination)?;
        let _ = writeln!(
            out,
            "  XDP program        {}  (BPF_PROG_TEST_RUN verdict {verdict:?})",
            backend.map_or_else(|| "nothing".to_owned(), |b| b.to_string())
        );
        let agree = backend == proxy;
        let _ = writeln!(out, "  planes {}", if agree { "agree" } else { "DISAGREE" });
    } else {
        let _ = writeln!(
            out,
            "  XDP program        not used for this listener (needs the `xdp` section, a maglev pool and backends on the listener's port)"
        );
    }
    Ok(out)
}

/// Runs a crafted packet of the flow through the loaded program. Backends
/// get synthetic MACs naming their position in the pool, so the frame the
/// program sends back says which one it chose.
fn xdp_pick(
    config: &Config,
    listener: &Listener,
    protocol: Protocol,
    source: SocketAddr,
    destination: SocketAddr,
) -> Result<(Verdict, Option<SocketAddr>), ExplainError> {
    let Some(pool) = listener.pool else {
        return Err(ExplainError::Routed(listener.name.clone()));
    };
    let backends = &config.pools[pool].backends;
    let hop_of = |ip: IpAddr| {
        let i = backends
            .iter()
            .position(|b| b.address.ip().to_canonical() == ip)?;
        let i = u16::try_from(i).ok()?.to_be_bytes();
        Some(Hop {
            mac: [0x02, 0xee, 0, 0, i[0], i[1]],
            src_mac: LB_MAC,
            tx_port: 0,
        })
    };
    let egress = Egress {
        forwarding: config
            .xdp
            .as_ref()
            .map_or(Forwarding::Dsr, |x| x.forwarding),
        mtu: 9000,
        ports: Vec::new(),
        ipip_src4: [198, 18, 0, 2],
        ipip_src6: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    };
    let tables = Tables::build(
        &[listener],
        &config.pools,
        &egress,
        &mut BackendIds::default(),
        &hop_of,
    )?;
    let mut program = XdpProgram::load(Sizes::for_tables(&tables, 16))?;
    program.apply(None, &tables)?;
    let frame = match (source, destination, protocol) {
        (SocketAddr::V4(s), SocketAddr::V4(d), Protocol::Tcp) => {
            Frame::tcp4(*s.ip(), s.port(), *d.ip(), d.port(), ACK)
        }
        (SocketAddr::V4(s), SocketAddr::V4(d), Protocol::Udp) => {
            Frame::udp4(*s.ip(), s.port(), *d.ip(), d.port())
        }
        (SocketAddr::V6(s), SocketAddr::V6(d), Protocol::Tcp) => {
            Frame::tcp6(*s.ip(), s.port(), *d.ip(), d.port(), ACK)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d), Protocol::Udp) => {
            Frame::udp6(*s.ip(), s.port(), *d.ip(), d.port())
        }
        _ => return Err(ExplainError::Family(source, destination)),
    };
    let (verdict, out) = program.run(&frame.bytes())?;
    let chosen = (verdict == Verdict::Tx && out.len() >= 6 && out[..4] == [0x02, 0xee, 0, 0])
        .then(|| {
            backends
                .get(usize::from(u16::from_be_bytes([out[4], out[5]])))
                .map(|b| b.address)
        })
        .flatten();
    Ok((verdict, chosen))
}

/// For every listener in both configs: how many Maglev ring slots each
/// backend loses and gains going from `old` to `new` (a slot is one share of
/// new flows; flows already placed stay on their backend either way).
#[must_use]
pub fn ring_changes(old: &Config, new: &Config) -> String {
    let mut out = String::new();
    for l in &new.listeners {
        let Some(before) = old.listeners.iter().find(|o| o.name == l.name) else {
            let _ = writeln!(out, "listener `{}`: new", l.name);
            continue;
        };
        let (Some(a), Some(b)) = (before.pool, l.pool) else {
            let _ = writeln!(out, "listener `{}`: routed by HTTP routes, no ring", l.name);
            continue;
        };
        let (a, b) = (&old.pools[a], &new.pools[b]);
        let table = |p: &crate::config::model::Pool| {
            let t = MaglevTable::for_pool(p);
            t.slots()
                .iter()
                .map(|&i| p.backends[i as usize].address)
                .collect::<Vec<_>>()
        };
        let (ta, tb) = (table(a), table(b));
        let size = ta.len().max(tb.len());
        let mut lost: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        let mut gained: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for i in 0..size {
            let (x, y) = (ta.get(i), tb.get(i));
            if x != y {
                if let Some(x) = x {
                    *lost.entry(*x).or_default() += 1;
                }
                if let Some(y) = y {
                    *gained.entry(*y).or_default() += 1;
                }
            }
        }
        let moved: usize = lost.values().sum();
        let _ = writeln!(
            out,
            "listener `{}` (pool `{}`): {moved} of {size} ring slots move",
            l.name, b.name
        );
        let all: std::collections::BTreeSet<SocketAddr> =
            lost.keys().chain(gained.keys()).copied().collect();
        for addr in all {
            let _ = writeln!(
                out,
                "  {addr:<24} loses {:>6}  gains {:>6}",
                lost.get(&addr).copied().unwrap_or(0),
                gained.get(&addr).copied().unwrap_or(0)
            );
        }
    }
    for l in old
        .listeners
        .iter()
        .filter(|o| !new.listeners.iter().any(|n| n.name == o.name))
    {
        let _ = writeln!(out, "listener `{}`: removed", l.name);
    }
    out
}
