//! The `routes` of a TCP `proxy` (or `auto`) listener: each matches the
//! server name of the client's TLS ClientHello (`match: { sni }`) and
//! names the pool it goes to. Nothing else a route can say in `http` mode
//! means anything to a connection whose bytes are never read past the
//! ClientHello, so every other key is an error naming the mode it needs.

use std::collections::HashMap;

use super::{Problems, http::host};
use crate::config::{
    limits::MAX_ROUTES,
    model::{Mode, Protocol},
    raw::{RawMatch, RawRoute},
    tls::SniRoute,
};

/// The SNI routes of listener `i`, a `mode` listener of `protocol`;
/// `pools` maps pool names to indexes.
pub(super) fn routes(
    i: usize,
    raw: &[RawRoute],
    (mode, protocol): (Mode, Protocol),
    pools: &HashMap<&str, usize>,
    p: &mut Problems,
) -> Vec<SniRoute> {
    let at = format!("listeners[{i}].routes");
    if protocol == Protocol::Udp {
        p.add(
            at,
            "routes by `sni` need a tcp listener (a ClientHello comes over TCP)",
        );
        return Vec::new();
    }
    if mode == Mode::Xdp {
        p.add(
            at,
            "`xdp` forwards packets and cannot read a ClientHello: routes by `sni` need `mode: proxy` or `auto`",
        );
        return Vec::new();
    }
    p.at_most(&at, raw.len(), MAX_ROUTES, "routes");
    raw.iter()
        .enumerate()
        .filter_map(|(r, route)| one(&format!("{at}[{r}]"), r, route, pools, p))
        .collect()
}

fn one(
    at: &str,
    index: usize,
    raw: &RawRoute,
    pools: &HashMap<&str, usize>,
    p: &mut Problems,
) -> Option<SniRoute> {
    let http_only = [
        ("split", raw.split.is_some()),
        ("redirect", raw.redirect.is_some()),
        ("answer", raw.answer.is_some()),
        ("strip_prefix", raw.strip_prefix.is_some()),
        ("request_headers", raw.request_headers.is_some()),
        ("response_headers", raw.response_headers.is_some()),
        ("rate_limit", raw.rate_limit.is_some()),
        ("compress", raw.compress.is_some()),
    ];
    for (key, _) in http_only.iter().filter(|(_, given)| *given) {
        p.add(
            format!("{at}.{key}"),
            format!(
                "`{key}` needs `mode: http`; a TCP listener's routes match `sni` and name a `pool`"
            ),
        );
    }
    let default = RawMatch::default();
    let m = raw.matcher.as_ref().unwrap_or(&default);
    let request_keys = [
        ("host", m.host.is_some()),
        ("path", m.path.is_some()),
        ("path_prefix", m.path_prefix.is_some()),
        ("path_regex", m.path_regex.is_some()),
        ("methods", !m.methods.is_empty()),
        ("headers", !m.headers.is_empty()),
    ];
    for (key, _) in request_keys.iter().filter(|(_, given)| *given) {
        p.add(
            format!("{at}.match.{key}"),
            format!("`{key}` matches HTTP requests and needs `mode: http`; a TCP listener matches `sni` (the TLS server name)"),
        );
    }
    let name = match &raw.name {
        Some(n) if n.trim().is_empty() => {
            p.add(format!("{at}.name"), "must not be empty");
            None
        }
        Some(n) => Some(n.clone()),
        None => Some(format!("route{index}")),
    };
    let Some(text) = &m.sni else {
        p.add(
            format!("{at}.match.sni"),
            "missing: a TCP listener's route matches the TLS server name (`match: { sni: \"*.example.test\" }`)",
        );
        return None;
    };
    let sni = p.check(&format!("{at}.match.sni"), host(text));
    let Some(pool_name) = &raw.pool else {
        p.add(
            format!("{at}.pool"),
            "missing: name the pool these connections go to",
        );
        return None;
    };
    let pool = pools.get(pool_name.as_str()).copied();
    if pool.is_none() {
        p.add(
            format!("{at}.pool"),
            format!("`{pool_name}` is not a defined pool"),
        );
    }
    Some(SniRoute {
        name: name?,
        sni: sni?,
        pool: pool?,
    })
}
