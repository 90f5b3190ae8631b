//! One round of lookups for a [`DnsQuery`], through hickory-resolver: the
//! A or AAAA records of the name, or its SRV records and then the
//! addresses of their targets. The answer keeps the shortest TTL seen,
//! which decides when the name is asked again.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    net::runtime::TokioRuntimeProvider,
    proto::rr::{RData, Record, RecordType},
};

use super::srv::{SrvRecord, preferred};
use crate::config::discover::{DnsQuery, RecordKind};

/// The most SRV targets resolved in one round: a larger answer is cut
/// (and reported) before it turns into a storm of address lookups.
pub const MAX_SRV_TARGETS: usize = 1024;

/// One address found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The address.
    pub ip: IpAddr,
    /// The port, from an SRV record.
    pub port: Option<u16>,
    /// The backend weight, from an SRV record.
    pub weight: Option<u32>,
}

/// What one round found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Every address, sorted.
    pub targets: Vec<Target>,
    /// The shortest TTL among the records used.
    pub ttl: Duration,
    /// SRV targets left unresolved by [`MAX_SRV_TARGETS`].
    pub cut: usize,
}

/// Why a round found nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// The name has no records of the type (or does not exist).
    #[error("no {0} records")]
    Empty(RecordKind),
    /// The servers did not answer, or answered with an error.
    #[error("{0}")]
    Failed(String),
}

/// A resolver asking `query`'s servers, or those of `/etc/resolv.conf`,
/// without a cache (the query's own schedule decides how fresh answers
/// are) or the hosts file (which has no TTL to follow).
pub fn resolver(query: &DnsQuery) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if query.resolvers.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?
    } else {
        let servers = query
            .resolvers
            .iter()
            .map(|a| server(*a))
            .collect::<Vec<_>>();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = query.timeout;
    opts.attempts = 2;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| format!("cannot start a resolver: {e}"))
}

fn server(address: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(address.ip());
    for c in &mut config.connections {
        c.port = address.port();
    }
    config
}

/// One round for `query`.
pub async fn lookup(resolver: &TokioResolver, query: &DnsQuery) -> Result<Answer, LookupError> {
    resolver.clear_cache();
    match query.record {
        RecordKind::A => addresses(resolver, query, RecordType::A).await,
        RecordKind::AAAA => addresses(resolver, query, RecordType::AAAA).await,
        RecordKind::SRV => services(resolver, query).await,
    }
}

async fn addresses(
    resolver: &TokioResolver,
    query: &DnsQuery,
    kind: RecordType,
) -> Result<Answer, LookupError> {
    let found = resolver
        .lookup(query.name.as_str(), kind)
        .await
        .map_err(|e| failed(&e, query.record))?;
    let mut ttl = u32::MAX;
    let mut targets = Vec::new();
    for r in found.answers() {
        if let Some(ip) = ip_of(r) {
            ttl = ttl.min(r.ttl);
            targets.push(Target {
                ip,
                port: None,
                weight: None,
            });
        }
    }
    done(targets, ttl, 0, query.record)
}

async fn services(resolver: &TokioResolver, query: &DnsQuery) -> Result<Answer, LookupError> {
    let found = resolver
        .lookup(query.name.as_str(), RecordType::SRV)
        .await
        .map_err(|e| failed(&e, query.record))?;
    let mut ttl = u32::MAX;
    let mut records = Vec::new();
    for r in found.answers() {
        if let RData::SRV(srv) = &r.data {
            ttl = ttl.min(r.ttl);
            records.push(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_ascii().to_ascii_lowercase(),
            });
        }
    }
    let mut chosen = preferred(&records);
    let cut = chosen.len().saturating_sub(MAX_SRV_TARGETS);
    chosen.truncate(MAX_SRV_TARGETS);
    let mut targets = Vec::new();
    for (record, weight) in chosen {
        // Servers usually send the targets' addresses along; asking again
        // is only for those they left out.
        let mut ips: Vec<(IpAddr, u32)> = found
            .additionals()
            .iter()
            .filter(|r| r.name.to_ascii().eq_ignore_ascii_case(&record.target))
            .filter_map(|r| ip_of(r).map(|ip| (ip, r.ttl)))
            .collect();
        if ips.is_empty() {
            match resolver.lookup_ip(record.target.as_str()).await {
                Ok(l) => {
                    ips = l
                        .as_lookup()
                        .answers()
                        .iter()
                        .filter_map(|r| ip_of(r).map(|ip| (ip, r.ttl)))
                        .collect();
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => {
                    return Err(LookupError::Failed(format!(
                        "SRV target `{}`: {e}",
                        record.target
                    )));
                }
            }
        }
        for (ip, t) in ips {
            ttl = ttl.min(t);
            targets.push(Target {
                ip,
                port: Some(record.port),
                weight: Some(weight),
            });
        }
    }
    done(targets, ttl, cut, query.record)
}

fn ip_of(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

fn failed(e: &hickory_resolver::net::NetError, kind: RecordKind) -> LookupError {
    if e.is_no_records_found() {
        LookupError::Empty(kind)
    } else {
        LookupError::Failed(e.to_string())
    }
}

fn done(
    mut targets: Vec<Target>,
    ttl: u32,
    cut: usize,
    kind: RecordKind,
) -> Result<Answer, LookupError> {
    if targets.is_empty() {
        return Err(LookupError::Empty(kind));
    }
    targets.sort_unstable();
    targets.dedup_by_key(|t| (t.ip, t.port));
    Ok(Answer {
        targets,
        ttl: Duration::from_secs(u64::from(ttl)),
        cut,
    })
}
