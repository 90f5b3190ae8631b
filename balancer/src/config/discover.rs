//! `pools[].discover`: where a pool's backends come from besides its
//! `backends` list. A DNS name (A, AAAA or SRV records) and a watched file
//! of backends; both may feed one pool, beside its static backends. The
//! runtime side is [`crate::discover`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

/// A pool's discovery sources, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discover {
    /// A DNS name the pool follows.
    pub dns: Option<DnsDiscovery>,
    /// A file of backends the pool follows.
    pub file: Option<PathBuf>,
    /// The most discovered backends the pool takes; a larger answer is
    /// cut (lowest addresses kept) and reported.
    pub max_backends: usize,
}

/// `discover.dns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsDiscovery {
    /// What is asked, and of whom; pools asking the same share one task.
    pub query: DnsQuery,
    /// The backends' port (A and AAAA; SRV records carry their own).
    pub port: Option<u16>,
    /// The backends' weight (A and AAAA; SRV records carry their own).
    pub weight: u32,
}

/// The part of `discover.dns` that decides the lookups: one resolver task
/// runs per distinct value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsQuery {
    /// The name, fully qualified (ends in `.`), lowercase.
    pub name: String,
    /// The record type asked for.
    pub record: RecordKind,
    /// The servers asked; empty for `/etc/resolv.conf`'s.
    pub resolvers: Vec<SocketAddr>,
    /// The soonest a name is asked again, whatever its TTL.
    pub min_interval: Duration,
    /// The latest a name is asked again, whatever its TTL.
    pub max_interval: Duration,
    /// Time allowed per server and attempt.
    pub timeout: Duration,
    /// An empty answer replaces the set instead of counting as a failure.
    pub allow_empty: bool,
}

/// `discover.dns.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum RecordKind {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// Targets with ports, priorities and weights.
    #[allow(clippy::upper_case_acronyms)]
    SRV,
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::A => "A",
            RecordKind::AAAA => "AAAA",
            RecordKind::SRV => "SRV",
        })
    }
}

/// Where a backend of a pool came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The config file's `backends`.
    #[default]
    Static,
    /// `discover.dns`.
    Dns,
    /// `discover.file`.
    File,
}

impl Origin {
    /// The name status and metrics use.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Origin::Static => "static",
            Origin::Dns => "dns",
            Origin::File => "file",
        }
    }
}
