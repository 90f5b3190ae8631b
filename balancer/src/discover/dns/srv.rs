//! SRV answers as backends (RFC 2782): only the targets of the lowest
//! priority that has any are used, as a client "MUST attempt to contact
//! the target host with the lowest-numbered priority it can reach" (the
//! health checks, not the resolver, decide what is reachable here); their
//! weights become backend weights.

use crate::config::limits::MAX_WEIGHT;

/// One SRV record, its target already a name to resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Share among records of one priority.
    pub weight: u16,
    /// The backends' port.
    pub port: u16,
    /// The host, fully qualified.
    pub target: String,
}

/// The records of the lowest priority, each with its backend weight.
/// Weight 0 ("a very small chance of being selected") becomes 1, the
/// smallest share that still takes flows; weights above
/// [`MAX_WEIGHT`] are scaled down together, keeping their ratios.
#[must_use]
pub fn preferred(records: &[SrvRecord]) -> Vec<(SrvRecord, u32)> {
    let Some(best) = records.iter().map(|r| r.priority).min() else {
        return Vec::new();
    };
    // A target of "." means the service is not offered at that name.
    let chosen: Vec<&SrvRecord> = records
        .iter()
        .filter(|r| r.priority == best && r.target != ".")
        .collect();
    let top = chosen
        .iter()
        .map(|r| u32::from(r.weight))
        .max()
        .unwrap_or(0);
    chosen
        .into_iter()
        .map(|r| {
            let w = u32::from(r.weight);
            let scaled = if top > MAX_WEIGHT {
                // Rounded up so no record falls to 0.
                (w * MAX_WEIGHT).div_ceil(top)
            } else {
                w
            };
            (r.clone(), scaled.max(1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{SrvRecord, preferred};

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 8080,
            target: target.to_owned(),
        }
    }

    #[test]
    fn only_the_lowest_priority_is_used() {
        let picked = preferred(&[
            srv(20, 5, "b."),
            srv(10, 3, "a."),
            srv(10, 1, "c."),
            srv(30, 9, "d."),
        ]);
        let names: Vec<&str> = picked.iter().map(|(r, _)| r.target.as_str()).collect();
        assert_eq!(names, ["a.", "c."]);
        assert_eq!(picked.iter().map(|(_, w)| *w).collect::<Vec<_>>(), [3, 1]);
    }

    #[test]
    fn weights_keep_their_ratios_within_the_limit() {
        let picked = preferred(&[srv(0, 0, "a."), srv(0, 60_000, "b."), srv(0, 30_000, "c.")]);
        let w: Vec<u32> = picked.iter().map(|(_, w)| *w).collect();
        assert_eq!(w, [1, 10_000, 5_000]);
        let all_zero = preferred(&[srv(0, 0, "a."), srv(0, 0, "b.")]);
        assert!(all_zero.iter().all(|(_, w)| *w == 1));
    }

    #[test]
    fn no_records_or_a_dot_target_give_nothing() {
        assert!(preferred(&[]).is_empty());
        assert!(preferred(&[srv(0, 1, ".")]).is_empty());
    }
}
