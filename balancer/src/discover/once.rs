//! One round of every source, for commands that do not run a daemon
//! (`balancer explain`): the config with the backends its sources give
//! now. A source that fails leaves its pools with their static backends,
//! and says so.

use std::collections::HashMap;

use super::{Found, SourceKey, dns, merge};
use crate::config::{Config, backends_file};

/// `config` with each source asked once; the second value names every
/// source that failed, with why.
pub async fn resolve(config: &Config) -> (Config, Vec<String>) {
    let mut found = HashMap::new();
    let mut failed = Vec::new();
    for key in SourceKey::all(config) {
        let outcome = match &key {
            SourceKey::Dns(q) => match dns::lookup::resolver(q) {
                Ok(r) => dns::lookup::lookup(&r, q)
                    .await
                    .map(Found::Dns)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            SourceKey::File(p) => backends_file::load(p)
                .map(Found::File)
                .map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(f) => {
                found.insert(key, f);
            }
            Err(e) => failed.push(format!("{} `{}`: {e}", key.kind(), key.target())),
        }
    }
    let ports = merge::xdp_ports(config, true);
    (merge::merge(config, &found, &ports, None).0, failed)
}
