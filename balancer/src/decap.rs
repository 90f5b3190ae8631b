//! `balancer decap`: runs the backend-side IP-in-IP decapsulator on an
//! interface until SIGINT/SIGTERM. Tunnels addressed to the interface's own
//! addresses (or the `--endpoint` addresses given) are unwrapped; the inner
//! packets, addressed to a VIP the host holds on loopback, go up the stack.

use std::net::IpAddr;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{
    config::model::KernelLog,
    dataplane::xdp::{
        Attached, XdpError, XdpProgram,
        diag::Reports,
        iface::{IfaceError, Interface},
    },
};

/// Why the decapsulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    /// The interface is missing or unreadable.
    #[error(transparent)]
    Interface(#[from] IfaceError),
    /// Nothing to accept tunnels for.
    #[error("interface `{0}` has no address to accept tunnels for; give one with --endpoint")]
    NoEndpoint(String),
    /// Loading or attaching failed.
    #[error(transparent)]
    Program(#[from] XdpError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Attaches the decapsulator to `interface`, reporting at `level` into
/// this process's log, and waits for a stop signal.
pub async fn run(
    interface: &str,
    endpoints: &[IpAddr],
    level: KernelLog,
) -> Result<(), DecapError> {
    let iface = Interface::read(interface)?;
    let endpoints: Vec<IpAddr> = if endpoints.is_empty() {
        iface.addrs.clone()
    } else {
        endpoints.to_vec()
    };
    if endpoints.is_empty() {
        return Err(DecapError::NoEndpoint(interface.to_owned()));
    }
    let mut sigint = signal(SignalKind::interrupt()).map_err(DecapError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(DecapError::Signals)?;
    let mut program = XdpProgram::load_decap(&endpoints)?;
    let diag = Reports::start(
        &mut program,
        "balancer_decap",
        std::sync::Arc::default(),
        level,
    );
    let attached = program.attach(interface)?;
    if attached == Attached::Generic {
        warn!(%interface, "decapsulator attached in GENERIC mode (no native XDP in this driver)");
    }
    info!(%interface, attach = %attached, endpoints = ?endpoints, "decapsulating IP-in-IP tunnels");
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    info!(%interface, "stopping: detaching the decapsulator");
    drop(program);
    drop(diag);
    Ok(())
}
