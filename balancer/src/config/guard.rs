//! Validation of the guard: the global `guard` section and each listener's
//! own `guard`. Lists must not overlap in ways that make an entry
//! meaningless, since the XDP program picks the longest matching prefix:
//! within a list any overlap is redundant, and an allow entry inside a deny
//! entry would never admit anything (deny wins). A deny entry inside an
//! allow entry is the one overlap kept: "allow this range except that
//! host".

use std::num::NonZeroU32;

use super::{
    model::{Cidr, Guard, Limit, ListenerGuard, Mode, PerSource, Protocol, StrayTcp},
    raw::{RawGuard, RawListenerGuard},
    validate::Problems,
    values,
};

/// Entries a single list may hold.
pub const MAX_LIST: usize = 4096;
/// Largest rate or burst accepted, per second.
const MAX_RATE: u64 = 100_000_000;
/// Largest per-source table.
const MAX_SOURCES: u64 = 16_777_216;

/// What a list entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// `deny`.
    Deny,
    /// `allow`.
    Allow,
    /// `martians`.
    Martian,
}

/// One list entry and where it was written, for error messages.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Field path, like `guard.deny[2]`.
    pub at: String,
    /// Which list.
    pub kind: ListKind,
    /// The prefix.
    pub cidr: Cidr,
}

/// The global guard section.
pub fn guard(g: &RawGuard, p: &mut Problems) -> Guard {
    let deny = cidrs(&g.deny, "guard.deny", p);
    let allow = cidrs(&g.allow, "guard.allow", p);
    let martians = cidrs(&g.martians, "guard.martians", p);
    let entries = entries(&[
        ("guard.deny", ListKind::Deny, &deny),
        ("guard.allow", ListKind::Allow, &allow),
        ("guard.martians", ListKind::Martian, &martians),
    ]);
    for (at, message) in conflicts(&entries, &[]) {
        p.add(at, message);
    }
    let per_source = g.per_source.as_ref().map_or_else(PerSource::default, |s| {
        let at = "guard.per_source";
        PerSource {
            syn: limit(s.syn_rate, s.syn_burst, &format!("{at}.syn"), p),
            packets: limit(s.packet_rate, s.packet_burst, &format!("{at}.packet"), p),
            table_size: s.table_size.map_or(PerSource::default().table_size, |n| {
                p.bounded(&format!("{at}.table_size"), Some(n), 1, MAX_SOURCES)
            }),
        }
    });
    Guard {
        deny,
        allow,
        martians,
        per_source,
        flow_on_ack: g.flow_on_ack.unwrap_or(true),
        stray_tcp: g.stray_tcp.unwrap_or(StrayTcp::Drop),
    }
}

/// Listener `i`'s own guard (the listener has `kind`: mode and protocol),
/// checked against the global lists too.
pub fn listener(
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

/// The global lists as entries.
#[must_use]
pub fn global_entries(g: &Guard) -> Vec<Entry> {
    entries(&[
        ("guard.deny", ListKind::Deny, &g.deny),
        ("guard.allow", ListKind::Allow, &g.allow),
        ("guard.martians", ListKind::Martian, &g.martians),
    ])
}

fn entries(lists: &[(&str, ListKind, &Vec<Cidr>)]) -> Vec<Entry> {
    lists
        .iter()
        .flat_map(|(at, kind, list)| {
            list.iter().enumerate().map(move |(i, c)| Entry {
                at: format!("{at}[{i}]"),
                kind: *kind,
                cidr: *c,
            })
        })
        .collect()
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

/// Every entry of `new` that conflicts with an earlier entry of `new` or
/// with one of `global`, as (field, message). `global` entries are taken
/// as consistent among themselves and sit in another scope: the program
/// looks both up, deny wins across them and a listener's allow list
/// replaces the global one, so across scopes only an allow entry inside a
/// deny entry is meaningless.
#[must_use]
pub fn conflicts(new: &[Entry], global: &[Entry]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, b) in new.iter().enumerate() {
        let within = new[..i].iter().find_map(|a| conflict(a, b, false));
        let across = || global.iter().find_map(|a| conflict(a, b, true));
        if let Some(why) = within.or_else(across) {
            out.push((b.at.clone(), why));
        }
    }
    out
}

/// Why `new` cannot join `same` (entries of its own scope) beside
/// `global` (the global lists, when `new` is a listener's): the check of
/// [`conflicts`] for one entry, linear in the lists.
#[must_use]
pub fn conflict_of(new: &Entry, same: &[Entry], global: &[Entry]) -> Option<String> {
    same.iter()
        .find_map(|a| conflict(a, new, false))
        .or_else(|| global.iter().find_map(|a| conflict(a, new, true)))
}

/// Listener `i`'s own lists as entries.
#[must_use]
pub fn listener_entries(g: &ListenerGuard, i: usize) -> Vec<Entry> {
    let at = format!("listeners[{i}].guard");
    entries(&[
        (&format!("{at}.deny"), ListKind::Deny, &g.deny),
        (&format!("{at}.allow"), ListKind::Allow, &g.allow),
    ])
}

/// Why `b` cannot stand beside `a`, if it cannot; `across` when they are in
/// different scopes.
fn conflict(a: &Entry, b: &Entry, across: bool) -> Option<String> {
    let (outer, inner) = if a.cidr.contains(&b.cidr) {
        (a, b)
    } else if b.cidr.contains(&a.cidr) {
        (b, a)
    } else {
        return None;
    };
    let refusing = |k| matches!(k, ListKind::Deny | ListKind::Martian);
    if outer.kind == ListKind::Allow && refusing(inner.kind) && outer.cidr != inner.cidr {
        // A hole in an allowed range: meaningful.
        return None;
    }
    let dead = if inner.kind == ListKind::Allow && refusing(outer.kind) {
        "; the deny wins, so the allow entry would never admit anything"
    } else if across {
        return None;
    } else {
        "; an address must match one entry, so merge or remove one of them"
    };
    Some(format!(
        "`{}` overlaps `{}` ({}){dead}",
        b.cidr, a.cidr, a.at
    ))
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

#[cfg(test)]
mod tests {
    use super::{Entry, ListKind, conflicts};
    use crate::config::values::cidr;

    fn e(at: &str, kind: ListKind, c: &str) -> Entry {
        Entry {
            at: at.to_owned(),
            kind,
            cidr: cidr(c).expect("cidr"),
        }
    }

    #[test]
    fn a_deny_hole_in_an_allowed_range_is_kept() {
        let list = [
            e("allow[0]", ListKind::Allow, "198.18.0.0/16"),
            e("deny[0]", ListKind::Deny, "198.18.0.66/32"),
        ];
        assert!(conflicts(&list, &[]).is_empty());
    }

    #[test]
    fn an_allow_inside_a_deny_is_refused_at_the_allow() {
        let list = [
            e("deny[0]", ListKind::Deny, "198.18.0.0/16"),
            e("allow[0]", ListKind::Allow, "198.18.0.0/24"),
        ];
        let c = conflicts(&list, &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "allow[0]");
        assert!(c[0].1.contains("never admit"), "{}", c[0].1);
    }

    #[test]
    fn overlaps_within_a_list_and_equal_prefixes_are_refused() {
        let list = [
            e("deny[0]", ListKind::Deny, "fd00::/8"),
            e("deny[1]", ListKind::Deny, "fd00:1::/32"),
            e("allow[0]", ListKind::Allow, "198.18.0.0/15"),
            e("deny[2]", ListKind::Deny, "198.18.0.0/15"),
        ];
        let c = conflicts(&list, &[]);
        let at: Vec<&str> = c.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(at, ["deny[1]", "deny[2]"]);
    }

    #[test]
    fn ipv6_prefixes_overlap_ipv4_only_through_the_mapped_range() {
        let list = [
            e("deny[0]", ListKind::Deny, "0.0.0.0/0"),
            e("deny[1]", ListKind::Deny, "::/0"),
        ];
        // ::/0 contains the IPv4-mapped range; the lists treat the families
        // apart only if ::/0 is not written, so this one is refused.
        assert_eq!(conflicts(&list, &[]).len(), 1);
        let list = [
            e("deny[0]", ListKind::Deny, "0.0.0.0/0"),
            e("deny[1]", ListKind::Deny, "fd00::/8"),
        ];
        assert!(conflicts(&list, &[]).is_empty());
    }
}
