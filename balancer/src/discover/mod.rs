//! Backend discovery: pools that follow a DNS name ([`dns`]) or a watched
//! file ([`file`]) as well as the backends their config lists.
//!
//! Data flows one way. A task per source (one per distinct DNS query,
//! shared by the pools that ask it, and one per file) reports each round
//! to the daemon as a [`Report`]; the [`Registry`] keeps the last good set
//! of every source (a failed round keeps it); [`merge`] builds the config
//! the daemon serves from the file's config and those sets; and the
//! daemon applies that config exactly as it applies a reload, so health
//! state, the XDP maps, the proxies and status all follow one path.

pub mod diff;
pub mod dns;
pub mod file;
pub mod merge;
pub mod once;
mod registry;

use std::path::PathBuf;

pub use self::registry::{DiscoveryStatus, PoolNote, Registry, SourceStatus};
use crate::config::{Config, discover::DnsQuery, model::Backend};

/// One source of backends, as the runtime keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    /// A DNS query.
    Dns(DnsQuery),
    /// A discovery file.
    File(PathBuf),
}

impl SourceKey {
    /// Every source `config` names, each once.
    #[must_use]
    pub fn all(config: &Config) -> Vec<SourceKey> {
        let mut keys: Vec<SourceKey> = config
            .pools
            .iter()
            .filter_map(|p| p.discover.as_ref())
            .flat_map(|d| {
                d.dns
                    .as_ref()
                    .map(|d| SourceKey::Dns(d.query.clone()))
                    .into_iter()
                    .chain(d.file.clone().map(SourceKey::File))
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// `dns` or `file`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            SourceKey::Dns(_) => "dns",
            SourceKey::File(_) => "file",
        }
    }

    /// What the source reads, for logs and status: the name and record
    /// type (and servers, when the config lists them), or the path.
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            SourceKey::Dns(q) if q.resolvers.is_empty() => format!("{} {}", q.name, q.record),
            SourceKey::Dns(q) => {
                let servers: Vec<String> = q.resolvers.iter().map(ToString::to_string).collect();
                format!("{} {} @{}", q.name, q.record, servers.join(","))
            }
            SourceKey::File(p) => p.display().to_string(),
        }
    }
}

/// What one round of a source found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A DNS answer.
    Dns(dns::lookup::Answer),
    /// A discovery file's backends.
    File(Vec<Backend>),
}

impl Found {
    /// How many addresses or backends it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Found::Dns(a) => a.targets.len(),
            Found::File(b) => b.len(),
        }
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` serves the same set (a DNS answer's TTL may differ).
    #[must_use]
    pub fn same_set(&self, other: &Found) -> bool {
        match (self, other) {
            (Found::Dns(a), Found::Dns(b)) => a.targets == b.targets && a.cut == b.cut,
            (Found::File(a), Found::File(b)) => a == b,
            _ => false,
        }
    }
}

/// One round's outcome, sent by a source's task to the daemon.
#[derive(Debug)]
pub struct Report {
    /// The source.
    pub key: SourceKey,
    /// What it found, or why it found nothing usable.
    pub outcome: Result<Found, String>,
}
