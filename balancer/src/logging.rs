//! Tracing setup. `RUST_LOG` overrides the default `info` filter. The XDP
//! programs' reports (target `balancer::kernel`) pass at every level
//! unless `RUST_LOG` names that target itself: their level is chosen in
//! the kernel (`xdp.log`, `balancer xdp-log`), so one knob decides.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Log line format (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The tracing target of the XDP programs' reports.
pub const KERNEL_TARGET: &str = "balancer::kernel";

/// The filter for `RUST_LOG` (`None`: unset): its directives, or `info`,
/// plus every level of [`KERNEL_TARGET`] unless it names that target.
#[must_use]
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    if base.contains(KERNEL_TARGET) {
        base.to_owned()
    } else {
        format!("{base},{KERNEL_TARGET}=trace")
    }
}

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat) {
    let from_env = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = EnvFilter::try_new(filter_directives(from_env.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(None)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::filter_directives;

    #[test]
    fn kernel_reports_pass_unless_rust_log_names_them() {
        assert_eq!(filter_directives(None), "info,balancer::kernel=trace");
        assert_eq!(filter_directives(Some("")), "info,balancer::kernel=trace");
        assert_eq!(
            filter_directives(Some("debug")),
            "debug,balancer::kernel=trace"
        );
        assert_eq!(
            filter_directives(Some("info,balancer::kernel=off")),
            "info,balancer::kernel=off"
        );
    }
}
