//! What the announcements look like now, and why: the one record that the
//! admin API (`GET /announce`), `/metrics`, `status.json` and `balancer
//! announce status` all show, so they never disagree.

use std::{fmt::Write as _, net::IpAddr};

use serde::{Deserialize, Serialize};

/// Why an address is or is not announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Announced: a listener on it qualifies and the host is in service.
    Healthy,
    /// Qualifies, but not yet for the whole hold-down.
    HoldDown {
        /// Milliseconds left.
        remaining_ms: u64,
    },
    /// No listener on it has enough backends that take new flows.
    Unhealthy {
        /// The most up backends any listener's pool on it has.
        up: usize,
        /// `announce.min_healthy`.
        needed: u32,
    },
    /// The operator withdrew the host (`balancer announce withdraw`).
    Withdrawn,
    /// Netlink refused the change; retried every half second.
    Failed {
        /// What the kernel said.
        error: String,
    },
}

impl Reason {
    /// Every label [`Reason::label`] gives, for metrics that show each.
    pub const LABELS: [&'static str; 5] =
        ["healthy", "hold_down", "unhealthy", "withdrawn", "failed"];

    /// The short name (a metric label).
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Reason::Healthy => "healthy",
            Reason::HoldDown { .. } => "hold_down",
            Reason::Unhealthy { .. } => "unhealthy",
            Reason::Withdrawn => "withdrawn",
            Reason::Failed { .. } => "failed",
        }
    }

    /// The sentence an operator reads.
    #[must_use]
    pub fn explain(&self) -> String {
        match self {
            Reason::Healthy => "its pool is healthy".to_owned(),
            Reason::HoldDown { remaining_ms } => format!(
                "healthy; announced after the hold-down, in {:.1} s",
                *remaining_ms as f64 / 1000.0
            ),
            Reason::Unhealthy { up, needed } => format!(
                "{up} backend{} up, announce.min_healthy is {needed}",
                if *up == 1 { "" } else { "s" }
            ),
            Reason::Withdrawn => "the host is withdrawn (`balancer announce restore`)".to_owned(),
            Reason::Failed { error } => format!("netlink refused: {error}"),
        }
    }
}

/// One VIP address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vip {
    /// The address.
    pub address: IpAddr,
    /// Whether it is on the announcement interface now.
    pub announced: bool,
    /// Whether the host answers for it itself (a proxy or http listener),
    /// or only the XDP program serves it (no local route).
    pub local: bool,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// The announcements of this host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The announcement interface.
    pub interface: String,
    /// Whether the operator withdrew the host.
    pub withdrawn: bool,
    /// Every candidate address, in address order.
    pub vips: Vec<Vip>,
}

impl Report {
    /// The text `balancer announce status` and `balancer status` print.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!(
            "announcements on {}: {}\n",
            self.interface,
            if self.withdrawn {
                "host withdrawn by the operator"
            } else {
                "host in service"
            }
        );
        for v in &self.vips {
            let _ = writeln!(
                out,
                "  {:<39} {:<9} {:<5} {}",
                v.address.to_string(),
                if v.announced {
                    "announced"
                } else {
                    "withdrawn"
                },
                if v.local { "local" } else { "xdp" },
                v.reason.explain()
            );
        }
        if self.vips.is_empty() {
            out.push_str("  no listener has a specific address to announce\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Reason, Report, Vip};

    #[test]
    fn the_report_reads_the_same_after_json_and_says_why() {
        let r = Report {
            interface: "vip0".into(),
            withdrawn: false,
            vips: vec![
                Vip {
                    address: "198.18.100.10".parse().expect("ip"),
                    announced: true,
                    local: false,
                    reason: Reason::Healthy,
                },
                Vip {
                    address: "fd00:100::10".parse().expect("ip"),
                    announced: false,
                    local: true,
                    reason: Reason::Unhealthy { up: 0, needed: 1 },
                },
            ],
        };
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["vips"][1]["reason"], "unhealthy");
        assert_eq!(json["vips"][1]["needed"], 1);
        let back: Report = serde_json::from_value(json).expect("back");
        assert_eq!(back, r);
        let text = r.render();
        assert!(text.contains("host in service"), "{text}");
        assert!(
            text.contains("fd00:100::10")
                && text.contains("0 backends up, announce.min_healthy is 1"),
            "{text}"
        );
        for reason in [
            Reason::Healthy,
            Reason::HoldDown { remaining_ms: 1 },
            Reason::Unhealthy { up: 0, needed: 1 },
            Reason::Withdrawn,
            Reason::Failed { error: "x".into() },
        ] {
            assert!(Reason::LABELS.contains(&reason.label()));
        }
    }
}
