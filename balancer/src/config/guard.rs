//! The overlap rules of the guard lists, shared by validation and by the
//! entries added at runtime through the admin API. The XDP program picks
//! the longest matching prefix, so lists must not overlap in ways that
//! make an entry meaningless: within a list any overlap is redundant, and
//! an allow entry inside a deny entry would never admit anything (deny
//! wins). A deny entry inside an allow entry is the one overlap kept:
//! "allow this range except that host".

use super::model::{Cidr, Guard, ListenerGuard};

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
pub struct ListedEntry {
    /// Field path, like `guard.deny[2]`.
    pub at: String,
    /// Which list.
    pub kind: ListKind,
    /// The prefix.
    pub cidr: Cidr,
}

/// The global lists as entries.
#[must_use]
pub fn global_entries(g: &Guard) -> Vec<ListedEntry> {
    entries(&[
        ("guard.deny", ListKind::Deny, &g.deny),
        ("guard.allow", ListKind::Allow, &g.allow),
        ("guard.martians", ListKind::Martian, &g.martians),
    ])
}

fn entries(lists: &[(&str, ListKind, &Vec<Cidr>)]) -> Vec<ListedEntry> {
    lists
        .iter()
        .flat_map(|(at, kind, list)| {
            list.iter().enumerate().map(move |(i, c)| ListedEntry {
                at: format!("{at}[{i}]"),
                kind: *kind,
                cidr: *c,
            })
        })
        .collect()
}

/// Every entry of `new` that conflicts with an earlier entry of `new` or
/// with one of `global`, as (field, message). `global` entries are taken
/// as consistent among themselves and sit in another scope: the program
/// looks both up, deny wins across them and a listener's allow list
/// replaces the global one, so across scopes only an allow entry inside a
/// deny entry is meaningless.
#[must_use]
pub fn conflicts(new: &[ListedEntry], global: &[ListedEntry]) -> Vec<(String, String)> {
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
pub fn conflict_of(
    new: &ListedEntry,
    same: &[ListedEntry],
    global: &[ListedEntry],
) -> Option<String> {
    same.iter()
        .find_map(|a| conflict(a, new, false))
        .or_else(|| global.iter().find_map(|a| conflict(a, new, true)))
}

/// Listener `i`'s own lists as entries.
#[must_use]
pub fn listener_entries(g: &ListenerGuard, i: usize) -> Vec<ListedEntry> {
    let at = format!("listeners[{i}].guard");
    entries(&[
        (&format!("{at}.deny"), ListKind::Deny, &g.deny),
        (&format!("{at}.allow"), ListKind::Allow, &g.allow),
    ])
}

/// Why `b` cannot stand beside `a`, if it cannot; `across` when they are in
/// different scopes.
fn conflict(a: &ListedEntry, b: &ListedEntry, across: bool) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::{ListKind, ListedEntry, conflicts};
    use crate::config::values::cidr;

    fn e(at: &str, kind: ListKind, c: &str) -> ListedEntry {
        ListedEntry {
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
