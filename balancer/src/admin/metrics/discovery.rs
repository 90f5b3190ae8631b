//! The discovery sources' metrics: each source's set size, changes and
//! failures, and what merging left out of a pool.

use std::fmt;

use prometheus_client::{encoding::DescriptorEncoder, metrics::MetricType};

use super::family;
use crate::discover::DiscoveryStatus;

/// Every discovery family; none when no pool discovers backends.
pub(super) fn discovery(
    encoder: &mut DescriptorEncoder,
    d: &DiscoveryStatus,
) -> Result<(), fmt::Error> {
    if d.is_empty() {
        return Ok(());
    }
    let labels = |s: &crate::discover::SourceStatus| {
        [("source", s.source.clone()), ("target", s.target.clone())]
    };
    family(
        encoder,
        "balancer_discovery_backends",
        "Backends (or addresses) in the source's last good set",
        MetricType::Gauge,
        d.sources.iter().map(|s| (labels(s), s.backends as u64)),
    )?;
    family(
        encoder,
        "balancer_discovery_changes",
        "Changes of the source's set, the first one included",
        MetricType::Counter,
        d.sources.iter().map(|s| (labels(s), s.changes)),
    )?;
    family(
        encoder,
        "balancer_discovery_failures",
        "Lookups or reads of the source that failed (its last good set stays)",
        MetricType::Counter,
        d.sources.iter().map(|s| (labels(s), s.failures)),
    )?;
    family(
        encoder,
        "balancer_discovery_failing",
        "Failed rounds of the source in a row, now (0 while it works)",
        MetricType::Gauge,
        d.sources.iter().map(|s| (labels(s), u64::from(s.failing))),
    )?;
    family(
        encoder,
        "balancer_discovery_last_change_timestamp_seconds",
        "When the source's set last changed (Unix time)",
        MetricType::Gauge,
        d.sources
            .iter()
            .filter_map(|s| s.last_change_unix.map(|t| (labels(s), t))),
    )?;
    let left = d.left_out.iter().flat_map(|n| {
        [("max_backends", n.cut), ("port", n.wrong_port)].map(|(why, count)| {
            (
                [("pool", n.pool.clone()), ("reason", why.to_owned())],
                count as u64,
            )
        })
    });
    family(
        encoder,
        "balancer_discovery_left_out",
        "Discovered backends left out of the pool, by reason (over max_backends, or another port than its XDP listener's)",
        MetricType::Gauge,
        left,
    )
}
