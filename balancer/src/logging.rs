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
    let base = base(rust_log);
    if base.contains(KERNEL_TARGET) {
        base.to_owned()
    } else {
        format!("{base},{KERNEL_TARGET}=trace")
    }
}

/// `RUST_LOG`'s directives, or `info` when it is unset or blank.
fn base(rust_log: Option<&str>) -> &str {
    rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info")
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
    // The kernel target's `trace` raised the filter's ceiling, and with it
    // the `log` crate's (rustls and others log through it): keep that at
    // what `RUST_LOG` asks of everything else, so their `trace!` calls stay
    // a branch not taken. The kernel's reports go to tracing directly.
    log::set_max_level(log_ceiling(from_env.as_deref()));
}

/// The highest level any directive of `RUST_LOG` (or `info`) lets through.
fn log_ceiling(rust_log: Option<&str>) -> log::LevelFilter {
    let hint = EnvFilter::try_new(base(rust_log))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .max_level_hint();
    match hint {
        Some(tracing::level_filters::LevelFilter::OFF) => log::LevelFilter::Off,
        Some(tracing::level_filters::LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(tracing::level_filters::LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(tracing::level_filters::LevelFilter::INFO) => log::LevelFilter::Info,
        Some(tracing::level_filters::LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::filter_directives;

    #[test]
    fn the_log_crates_ceiling_ignores_the_kernel_target() {
        use super::log_ceiling;
        assert_eq!(log_ceiling(None), log::LevelFilter::Info);
        assert_eq!(log_ceiling(Some("warn")), log::LevelFilter::Warn);
        assert_eq!(
            log_ceiling(Some("info,rustls=trace")),
            log::LevelFilter::Trace
        );
        assert_eq!(
            log_ceiling(Some("not a filter ===")),
            log::LevelFilter::Info
        );
    }

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
