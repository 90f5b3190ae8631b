//! `balancer run` and `balancer decap`: the long-running commands. Both log
//! through tracing (set up here, once the format is known) and end their
//! run with the error logged rather than printed, so it lands with the rest
//! of the daemon's lines.

use std::{net::IpAddr, path::Path, process::ExitCode};

use anyhow::Context as _;
use balancer::{
    config, decap,
    logging::{self, LogFormat},
    server,
};

/// Serves `file`, or the embedded demo config when none is given; with
/// `upgrade`, on the listening sockets of the daemon running now.
pub(crate) fn run(file: Option<&Path>, upgrade: bool, log: LogFormat) -> ExitCode {
    served(log, || {
        let config = if let Some(f) = file {
            config::load(f)?
        } else {
            tracing::info!("no config file given: serving the embedded demo (config/default.yaml)");
            config::embedded_default()?
        };
        runtime()?.block_on(server::run(config, file.map(Path::to_path_buf), upgrade))?;
        Ok(())
    })
}

/// Unwraps the balancer's tunnels arriving on `interface` until stopped.
pub(crate) fn decap(
    interface: &str,
    endpoints: &[IpAddr],
    level: balancer::config::model::KernelLog,
    log: LogFormat,
) -> ExitCode {
    served(log, || {
        Ok(runtime()?.block_on(decap::run(interface, endpoints, level))?)
    })
}

/// Starts logging, runs `serve`, and logs its error if it fails.
fn served(log: LogFormat, serve: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    logging::init(log);
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
