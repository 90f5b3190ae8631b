//! `balancer explain`: which backend a flow reaches, or how a config change
//! moves ring slots. The answers come from `balancer::explain`; this only
//! loads the files and picks the question.

use std::{net::SocketAddr, path::Path};

use anyhow::Context as _;
use balancer::{
    config::{self, model::Protocol},
    explain,
};

/// A flow as given on the command line; clap makes all three parts present
/// or all absent.
pub(crate) type Flow = ((Protocol, SocketAddr), SocketAddr);

/// The flow's path through both planes, or with `against` the ring moves.
pub(crate) fn explain(
    file: &Path,
    against: Option<&Path>,
    flow: Option<Flow>,
) -> anyhow::Result<String> {
    let config = config::load(file)?;
    if let Some(new) = against {
        return Ok(explain::ring_changes(&config, &config::load(new)?));
    }
    let ((protocol, source), destination) =
        flow.context("give PROTOCOL SOURCE DESTINATION, or --against FILE")?;
    Ok(explain::flow(&config, protocol, source, destination)?)
}
