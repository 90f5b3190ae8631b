//! What a change of discovered sets does to each pool: backends added,
//! removed and reweighted, for the one log line each change gets and for
//! telling a round that changed nothing.

use std::{collections::HashMap, fmt, net::SocketAddr};

use crate::config::Config;

/// One pool's change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolDiff {
    /// The pool.
    pub pool: String,
    /// New backends.
    pub added: Vec<SocketAddr>,
    /// Backends gone.
    pub removed: Vec<SocketAddr>,
    /// Backends whose weight changed: address, before, after.
    pub reweighted: Vec<(SocketAddr, u32, u32)>,
}

impl PoolDiff {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.reweighted.is_empty()
    }
}

impl fmt::Display for PoolDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added [{}]", list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed [{}]", list(&self.removed)));
        }
        if !self.reweighted.is_empty() {
            let w: Vec<String> = self
                .reweighted
                .iter()
                .map(|(a, from, to)| format!("{a} {from}->{to}"))
                .collect();
            parts.push(format!("reweighted [{}]", w.join(" ")));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Every pool of `new` whose backends differ from the same-named pool of
/// `old`, in `new`'s order.
#[must_use]
pub fn pools(old: &Config, new: &Config) -> Vec<PoolDiff> {
    new.pools
        .iter()
        .filter_map(|p| {
            let before: HashMap<SocketAddr, u32> = old
                .pools
                .iter()
                .find(|o| o.name == p.name)
                .map(|o| o.backends.iter().map(|b| (b.address, b.weight)).collect())
                .unwrap_or_default();
            let after: HashMap<SocketAddr, u32> =
                p.backends.iter().map(|b| (b.address, b.weight)).collect();
            let mut d = PoolDiff {
                pool: p.name.clone(),
                ..PoolDiff::default()
            };
            for b in &p.backends {
                match before.get(&b.address) {
                    None => d.added.push(b.address),
                    Some(w) if *w != b.weight => d.reweighted.push((b.address, *w, b.weight)),
                    Some(_) => {}
                }
            }
            d.removed = before
                .keys()
                .filter(|a| !after.contains_key(a))
                .copied()
                .collect();
            d.removed.sort_unstable();
            (!d.is_empty()).then_some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::pools;
    use crate::config::{self, Config};

    fn config(backends: &[(&str, u32)]) -> Config {
        let list = backends.iter().fold(String::new(), |mut out, (a, w)| {
            let _ = writeln!(out, "      - {{ address: \"{a}\", weight: {w} }}");
            out
        });
        config::parse(
            &format!(
                "version: 1\nlisteners:\n  - {{ name: l, protocol: tcp, address: \"127.0.0.1:8080\", pool: web }}\npools:\n  - name: web\n    backends:\n{list}"
            ),
            "t.yaml",
        )
        .expect("valid")
    }

    #[test]
    fn adds_removals_and_weights_are_told_apart() {
        let old = config(&[
            ("198.18.0.1:80", 1),
            ("198.18.0.2:80", 1),
            ("198.18.0.3:80", 1),
        ]);
        let new = config(&[
            ("198.18.0.1:80", 1),
            ("198.18.0.3:80", 5),
            ("198.18.0.4:80", 1),
        ]);
        let d = pools(&old, &new);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].added, ["198.18.0.4:80".parse().unwrap()]);
        assert_eq!(d[0].removed, ["198.18.0.2:80".parse().unwrap()]);
        assert_eq!(d[0].reweighted, [("198.18.0.3:80".parse().unwrap(), 1, 5)]);
        assert_eq!(
            d[0].to_string(),
            "added [198.18.0.4:80], removed [198.18.0.2:80], reweighted [198.18.0.3:80 1->5]"
        );
        assert!(pools(&old, &old).is_empty());
    }
}
