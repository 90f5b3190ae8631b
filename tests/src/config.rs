//! Builds balancer YAML for tests from listener and pool specs.

use std::fmt::Write as _;

/// One listener.
pub struct ListenerSpec<'a> {
    /// Listener name.
    pub name: &'a str,
    /// `ip:port` clients use.
    pub address: &'a str,
    /// `tcp` or `udp`.
    pub protocol: &'a str,
    /// Pool name.
    pub pool: &'a str,
    /// Extra `key: value` lines.
    pub extra: &'a [&'a str],
}

/// One pool.
pub struct PoolSpec<'a> {
    /// Pool name.
    pub name: &'a str,
    /// Algorithm key.
    pub algorithm: &'a str,
    /// `(address, weight)` per backend.
    pub backends: Vec<(String, u32)>,
}

/// A proxy-mode config with these listeners and pools.
#[must_use]
pub fn yaml(listeners: &[ListenerSpec<'_>], pools: &[PoolSpec<'_>]) -> String {
    let mut y = String::from("version: 1\nshutdown_grace: 5s\nlisteners:\n");
    for l in listeners {
        let _ = write!(
            y,
            "  - name: {}\n    address: \"{}\"\n    protocol: {}\n    mode: proxy\n    pool: {}\n",
            l.name, l.address, l.protocol, l.pool
        );
        for e in l.extra {
            let _ = writeln!(y, "    {e}");
        }
    }
    y.push_str("pools:\n");
    for p in pools {
        let _ = write!(
            y,
            "  - name: {}\n    algorithm: {}\n    backends:\n",
            p.name, p.algorithm
        );
        for (a, w) in &p.backends {
            let _ = write!(y, "      - address: \"{a}\"\n        weight: {w}\n");
        }
    }
    y
}

/// One TCP listener `web` at `VIP:80` over backend 0's port 80, the
/// smallest config a test of the daemon itself needs.
#[must_use]
pub fn web_on_backend0() -> String {
    simple(
        "web",
        &format!("{}:80", crate::topology::VIP4),
        "tcp",
        &[],
        "round_robin",
        vec![(crate::topology::backend_addr(0, 80, false).to_string(), 100)],
    )
}

/// TCP listeners that each send to their own single backend:
/// `(name, listener address, backend address)`. Pools take the listener's name.
#[must_use]
pub fn one_to_one(pairs: &[(&str, &str, String)]) -> String {
    let listeners: Vec<ListenerSpec<'_>> = pairs
        .iter()
        .map(|(name, address, _)| ListenerSpec {
            name,
            address,
            protocol: "tcp",
            pool: name,
            extra: &[],
        })
        .collect();
    let pools: Vec<PoolSpec<'_>> = pairs
        .iter()
        .map(|(name, _, backend)| PoolSpec {
            name,
            algorithm: "round_robin",
            backends: vec![(backend.clone(), 100)],
        })
        .collect();
    yaml(&listeners, &pools)
}

/// The common case: one listener over one pool `p`.
#[must_use]
pub fn simple(
    name: &str,
    address: &str,
    protocol: &str,
    extra: &[&str],
    algorithm: &str,
    backends: Vec<(String, u32)>,
) -> String {
    yaml(
        &[ListenerSpec {
            name,
            address,
            protocol,
            pool: "p",
            extra,
        }],
        &[PoolSpec {
            name: "p",
            algorithm,
            backends,
        }],
    )
}

/// An HTTP listener on the [`crate::Topology`] VIP (198.18.0.10:80) to
/// nginx on backend 1, with `/ws` routed to the WebSocket echo server
/// there ([`crate::scripts::ws_echo_server`]) after `extra_route` (route
/// lines), and `shutdown_grace` of `grace`.
#[must_use]
pub fn http_with_websocket(extra_route: &str, grace: &str) -> String {
    format!(
        "version: 1
shutdown_grace: {grace}
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: web
    routes:
{extra_route}      - {{ match: {{ path: /ws }}, pool: ws }}
pools:
  - {{ name: web, backends: [{{ address: \"198.18.1.11:80\" }}] }}
  - {{ name: ws, backends: [{{ address: \"198.18.1.11:8765\" }}] }}
"
    )
}
