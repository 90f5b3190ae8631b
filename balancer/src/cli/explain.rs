//! `balancer explain`: which backend a flow reaches, or how a config change
//! moves ring slots. The answers come from `balancer::explain`; this only
//! loads the files, asks each discovery source once (so a pool that
//! follows DNS or a file is explained with the backends it would have
//! now), and picks the question.

use std::{fmt::Write as _, net::SocketAddr, path::Path};

use anyhow::Context as _;
use balancer::{
    config::{self, Config, model::Protocol},
    discover, explain,
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
    let mut notes = String::new();
    let config = discovered(config::load(file)?, file, &mut notes)?;
    if let Some(new) = against {
        let new = discovered(config::load(new)?, new, &mut notes)?;
        return Ok(notes + &explain::ring_changes(&config, &new));
    }
    let ((protocol, source), destination) =
        flow.context("give PROTOCOL SOURCE DESTINATION, or --against FILE")?;
    Ok(notes + &explain::flow(&config, protocol, source, destination)?)
}

/// `config` with its discovery sources asked once; what they found, or
/// why they failed, goes into `notes`.
fn discovered(config: Config, file: &Path, notes: &mut String) -> anyhow::Result<Config> {
    if discover::SourceKey::all(&config).is_empty() {
        return Ok(config);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (resolved, failed) = runtime.block_on(discover::once::resolve(&config));
    for why in failed {
        let _ = writeln!(
            notes,
            "{}: discovery failed, static backends only: {why}",
            file.display()
        );
    }
    for p in resolved.pools.iter().filter(|p| p.discover.is_some()) {
        let found = p
            .backends
            .iter()
            .filter(|b| b.origin != config::discover::Origin::Static)
            .count();
        let _ = writeln!(
            notes,
            "{}: pool `{}` has {found} discovered backends",
            file.display(),
            p.name
        );
    }
    Ok(resolved)
}
