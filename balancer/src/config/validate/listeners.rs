//! The `listeners` section: unique names and addresses, a defined pool,
//! a mode the protocol and the file's planes can serve, and bounded
//! connection and session limits. The XDP-specific checks that need the
//! validated pools live in [`super::xdp`].

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use super::{Problems, guard, http, sni, tls};
use crate::config::{
    defaults::{
        DEFAULT_CONNECT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
        DEFAULT_MAX_SESSIONS, DEFAULT_MODE, DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_UDP_IDLE_TIMEOUT,
    },
    http::HttpListener,
    limits::{MAX_CONNECT_ATTEMPTS, MAX_LISTENERS, MAX_MAX_CONNECTIONS, MAX_MAX_SESSIONS},
    model::{Cidr, Guard, Listener, Mode, Protocol, ProxyEngine},
    raw::RawListener,
    values,
};

/// Every listener; `pools` maps pool names to indexes, `have_xdp` says
/// whether the file has an `xdp` section, `global_guard` is the validated
/// global guard each listener's own lists are checked against.
pub(super) fn listeners(
    raw: &[RawListener],
    pools: &HashMap<&str, usize>,
    have_xdp: bool,
    global_guard: &Guard,
    p: &mut Problems,
) -> Vec<Listener> {
    p.at_most("listeners", raw.len(), MAX_LISTENERS, "listeners");
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let at = |f: &str| format!("listeners[{i}].{f}");
        p.unique_name(at("name"), &l.name, &mut names, "listener");
        let address = p.check(&at("address"), values::socket_addr(&l.address));
        if let Some(a) = address
            && !addresses.insert((a, l.protocol))
        {
            p.add(
                at("address"),
                format!("`{a}` ({}) is used by another listener", l.protocol),
            );
        }
        let mode = l.mode.unwrap_or(DEFAULT_MODE);
        if l.protocol == Protocol::Udp && mode == Mode::Http {
            p.add(
                at("mode"),
                "`http` needs a tcp listener (this one is udp; use `proxy` or `auto`)",
            );
        }
        if mode == Mode::Xdp && !have_xdp {
            p.add(
                at("mode"),
                "`xdp` needs the top-level `xdp` section with an `interface`",
            );
        }
        let (pool, http) = pool_and_http(i, l, mode, pools, p);
        let sni_routes = match (&l.routes, mode) {
            (Some(routes), Mode::Proxy | Mode::Auto | Mode::Xdp) => {
                sni::routes(i, routes, (mode, l.protocol), pools, p)
            }
            _ => Vec::new(),
        };
        out.push(Listener {
            name: l.name.clone(),
            address: address.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            protocol: l.protocol,
            mode,
            pool,
            max_connections: p.bounded(
                &at("max_connections"),
                l.max_connections,
                DEFAULT_MAX_CONNECTIONS,
                MAX_MAX_CONNECTIONS,
            ),
            connect_timeout: p.duration(
                &at("connect_timeout"),
                l.connect_timeout.as_ref(),
                DEFAULT_CONNECT_TIMEOUT,
            ),
            idle_timeout: p.duration(
                &at("idle_timeout"),
                l.idle_timeout.as_ref(),
                idle_default(l.protocol),
            ),
            connect_attempts: p.bounded(
                &at("connect_attempts"),
                l.connect_attempts,
                DEFAULT_CONNECT_ATTEMPTS,
                MAX_CONNECT_ATTEMPTS,
            ),
            proxy_engine: proxy_engine(i, l, mode, p),
            max_sessions: p.bounded(
                &at("max_sessions"),
                l.max_sessions,
                DEFAULT_MAX_SESSIONS,
                MAX_MAX_SESSIONS,
            ),
            guard: l
                .guard
                .as_ref()
                .map(|g| guard::listener(g, i, (mode, l.protocol), global_guard, p))
                .unwrap_or_default(),
            http,
            accept_proxy_from: l
                .proxy_protocol
                .as_ref()
                .map(|raw| accept_proxy_from(i, &raw.accept_from, (mode, l.protocol), p))
                .unwrap_or_default(),
            sni_routes,
        });
    }
    out
}

/// Listener `i`'s `proxy_engine`: only where the daemon relays TCP bytes
/// itself (`proxy`, or `auto`, which stays in the proxy where XDP is not
/// there).
fn proxy_engine(i: usize, l: &RawListener, mode: Mode, p: &mut Problems) -> ProxyEngine {
    let Some(engine) = l.proxy_engine else {
        return ProxyEngine::default();
    };
    if l.protocol != Protocol::Tcp || !matches!(mode, Mode::Proxy | Mode::Auto) {
        p.add(
            format!("listeners[{i}].proxy_engine"),
            format!(
                "`proxy_engine` applies to tcp listeners in `proxy` or `auto` mode (this one is {} in `{mode}` mode); remove it",
                l.protocol,
            ),
        );
    }
    engine
}

/// Listener `i`'s `proxy_protocol.accept_from`: CIDRs that do not overlap,
/// on a listener whose connections the daemon reads (TCP, `proxy`, `auto`
/// or `http`; the XDP plane forwards packets it never reads).
fn accept_proxy_from(
    i: usize,
    raw: &[String],
    (mode, protocol): (Mode, Protocol),
    p: &mut Problems,
) -> Vec<Cidr> {
    let at = |f: &str| format!("listeners[{i}].proxy_protocol.{f}");
    // `auto` qualifies for XDP only without it, so it stays in the proxy.
    if protocol != Protocol::Tcp || !matches!(mode, Mode::Proxy | Mode::Http | Mode::Auto) {
        p.add(
            format!("listeners[{i}].proxy_protocol"),
            format!(
                "a PROXY header is read by `proxy`, `auto` and `http` TCP listeners only (this one is `{mode}` {protocol})"
            ),
        );
    }
    let mut out: Vec<Cidr> = Vec::new();
    for (j, text) in raw.iter().enumerate() {
        let Some(c) = p.check(&at(&format!("accept_from[{j}]")), values::cidr(text)) else {
            continue;
        };
        if let Some(other) = out.iter().find(|o| o.contains(&c) || c.contains(o)) {
            p.add(
                at(&format!("accept_from[{j}]")),
                format!("`{text}` overlaps `{other}` listed before it"),
            );
            continue;
        }
        out.push(c);
    }
    out
}

/// Listener `i`'s pool (every mode but `http` needs one) and, in `http`
/// mode, its routes and HTTP settings (other modes may not have them).
fn pool_and_http(
    i: usize,
    l: &RawListener,
    mode: Mode,
    pools: &HashMap<&str, usize>,
    p: &mut Problems,
) -> (Option<usize>, Option<HttpListener>) {
    let at = |f: &str| format!("listeners[{i}].{f}");
    let pool = match &l.pool {
        Some(name) => {
            let index = pools.get(name.as_str()).copied();
            if index.is_none() {
                p.add(at("pool"), format!("`{name}` is not a defined pool"));
            }
            Some(index.unwrap_or(0))
        }
        None if mode == Mode::Http => None,
        None => {
            p.add(
                at("pool"),
                format!(
                    "a `{mode}` listener needs a `pool` (only `http` listeners may leave it out)"
                ),
            );
            Some(0)
        }
    };
    let tls = l.tls.as_ref().map(|t| tls::listener(i, t, mode, p));
    let http = if mode == Mode::Http {
        let mut h = http::listener(
            i,
            l.routes.as_deref().unwrap_or_default(),
            l.http.as_ref(),
            pools,
            p,
        );
        h.tls = tls;
        Some(h)
    } else {
        // A TCP listener's `routes` are SNI routes, checked by the caller.
        if l.http.is_some() {
            p.add(
                at("http"),
                format!("`http` needs `mode: http` (this listener is `{mode}`)"),
            );
        }
        None
    };
    (pool, http)
}

const fn idle_default(protocol: Protocol) -> Duration {
    match protocol {
        Protocol::Tcp => DEFAULT_TCP_IDLE_TIMEOUT,
        Protocol::Udp => DEFAULT_UDP_IDLE_TIMEOUT,
    }
}
