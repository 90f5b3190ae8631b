//! The XDP program's diagnostics: the level it reports at and the lines
//! its reports became in the daemon's log.

use std::{fmt, sync::atomic::Ordering};

use prometheus_client::{encoding::DescriptorEncoder, metrics::MetricType};

use super::family;
use crate::{config::model::KernelLog, dataplane::xdp::plane::XdpPlane};

/// The diagnostics families of a running XDP plane.
pub(super) fn kernel_log(
    encoder: &mut DescriptorEncoder,
    plane: &XdpPlane,
) -> Result<(), fmt::Error> {
    let now = plane.kernel_log();
    family(
        encoder,
        "balancer_xdp_log_level",
        "The level the XDP program reports rare events at (1 for the current one)",
        MetricType::Gauge,
        KernelLog::ALL
            .iter()
            .map(|l| ([("level", l.name().to_owned())], u64::from(*l == now))),
    )?;
    let counts = plane.kernel_log_counts();
    family(
        encoder,
        "balancer_xdp_log_lines",
        "Reports of the XDP program written into the daemon's log, by level",
        MetricType::Counter,
        counts
            .by_level()
            .map(|(level, n)| ([("level", level.name().to_owned())], n)),
    )?;
    family(
        encoder,
        "balancer_xdp_log_suppressed",
        "Reports of the XDP program over the log's rate limit, counted and not written",
        MetricType::Counter,
        [(
            [] as [(&str, String); 0],
            counts.suppressed.load(Ordering::Relaxed),
        )],
    )
}
