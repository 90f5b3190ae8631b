//! Tracing setup. `RUST_LOG` overrides the default filter: `info`, and
//! every level of the XDP programs' reports (`balancer::kernel`), whose
//! level is chosen in the kernel (`xdp.log`, `balancer xdp-log`).

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

/// The filter without `RUST_LOG`.
pub const DEFAULT_FILTER: &str = "info,balancer::kernel=trace";

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
