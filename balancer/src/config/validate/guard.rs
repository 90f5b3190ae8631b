//! The guard sections: the global `guard` and each listener's own. Every
//! list entry must parse and obey the overlap rules of
//! [`crate::config::guard`]; rates and bursts come in pairs whose burst
//! holds at least one second of traffic.

use std::num::NonZeroU32;

use super::Problems;
use crate::config::{
    defaults::{DEFAULT_FLOW_ON_ACK, DEFAULT_STRAY_TCP},
    guard::{conflicts, global_entries, listener_entries},
    limits::{MAX_LIST, MAX_RATE, MAX_SOURCES},
    model::{Cidr, Guard, Limit, ListenerGuard, Mode, PerSource, Protocol},
    raw::{RawGuard, RawListenerGuard},
    values,
};

/// The global guard section.
pub(super) fn guard(g: &RawGuard, p: &mut Problems) -> Guard {
    let mut guard = Guard {
        deny: cidrs(&g.deny, "guard.deny", p),
        allow: cidrs(&g.allow, "guard.allow", p),
        martians: cidrs(&g.martians, "guard.martians", p),
        per_source: PerSource::default(),
        flow_on_ack: g.flow_on_ack.unwrap_or(DEFAULT_FLOW_ON_ACK),
        stray_tcp: g.stray_tcp.unwrap_or(DEFAULT_STRAY_TCP),
    };
    for (at, message) in conflicts(&global_entries(&guard), &[]) {
        p.add(at, message);
    }
    if let Some(s) = &g.per_source {
        let at = "guard.per_source";
        guard.per_source = PerSource {
            syn: limit(s.syn_rate, s.syn_burst, &format!("{at}.syn"), p),
            packets: limit(s.packet_rate, s.packet_burst, &format!("{at}.packet"), p),
            table_size: s.table_size.map_or(guard.per_source.table_size, |n| {
                p.bounded(&format!("{at}.table_size"), Some(n), 1, MAX_SOURCES)
            }),
        };
    }
    guard
}

/// Listener `i`'s own guard (the listener has `kind`: mode and protocol),
/// checked against the global lists too.
pub(super) fn listener(
    g: &RawListenerGuard,
    i: usize,
    kind: (Mode, Protocol),
    global: &Guard,
    p: &mut Problems,
) -> ListenerGuard {
    let at = format!("listeners[{i}].guard");
    let guard = ListenerGuard {
        deny: cidrs(&g.deny, &format!("{at}.deny"), p),
        allow: cidrs(&g.allow, &format!("{at}.allow"), p),
        new_flows: limit(g.syn_rate, g.syn_burst, &format!("{at}.syn"), p),
        cookies_above: cookies(g, &at, kind, p),
    };
    for (field, message) in conflicts(&listener_entries(&guard, i), &global_entries(global)) {
        p.add(field, message);
    }
    guard
}

fn cidrs(list: &[String], at: &str, p: &mut Problems) -> Vec<Cidr> {
    if list.len() > MAX_LIST {
        p.add(
            at,
            format!(
                "{} entries exceed the limit of {MAX_LIST}; summarise them into shorter prefixes",
                list.len()
            ),
        );
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, c)| p.check(&format!("{at}[{i}]"), values::cidr(c)))
        .collect()
}

/// `syn_cookies_above`: only where a kernel socket takes the handshake
/// (TCP, not `xdp` mode), and not beside a ceiling, which would drop what
/// the cookies should answer.
fn cookies(
    g: &RawListenerGuard,
    at: &str,
    (mode, protocol): (Mode, Protocol),
    p: &mut Problems,
) -> Option<Limit> {
    let rate = g.syn_cookies_above?;
    let field = format!("{at}.syn_cookies_above");
    if protocol != Protocol::Tcp {
        p.add(
            &field,
            "SYN cookies are for TCP listeners; remove it here".to_owned(),
        );
    } else if mode == Mode::Xdp {
        p.add(
            &field,
            "an `xdp` listener's handshakes happen on its backends, which answer with their own SYN cookies; use `syn_rate` for a ceiling here, or mode `proxy`".to_owned(),
        );
    } else if g.syn_rate.is_some() {
        p.add(
            &field,
            "cannot stand beside `syn_rate`: the ceiling would drop the SYNs the cookies should answer; keep one".to_owned(),
        );
    }
    let rate = p.bounded(&field, Some(rate), 1, MAX_RATE);
    Some(Limit { rate, burst: rate })
}

/// A rate and burst pair under `{at}_rate` / `{at}_burst`; the burst
/// defaults to the rate (one second's worth).
fn limit(rate: Option<u64>, burst: Option<u64>, at: &str, p: &mut Problems) -> Option<Limit> {
    let (rate_at, burst_at) = (format!("{at}_rate"), format!("{at}_burst"));
    let Some(r) = rate else {
        if burst.is_some() {
            p.add(burst_at, format!("needs `{}` beside it", leaf(&rate_at)));
        }
        return None;
    };
    let rate = p.bounded(&rate_at, Some(r), 1, MAX_RATE);
    let burst = match burst {
        None => rate,
        Some(b) => {
            if b != 0 && b < r {
                p.add(
                    &burst_at,
                    format!(
                        "`{b}` is below {} `{r}` (the bucket could never hold one second of traffic)",
                        leaf(&rate_at)
                    ),
                );
            }
            p.bounded(&burst_at, Some(b), 1, MAX_RATE)
        }
    };
    Some(Limit {
        rate,
        burst: burst.max(NonZeroU32::MIN),
    })
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
