//! The daemon's side of discovery: a task per source the config names
//! (started and stopped as reloads change the sources), the last good set
//! of each (a failed round keeps it, logged once per streak of failures),
//! and the figures `status` and `/metrics` show.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use super::{Found, Report, SourceKey, dns, file, merge};
use crate::config::Config;

/// One source as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// `dns` or `file`.
    pub source: String,
    /// The name and record type, or the path.
    pub target: String,
    /// The pools that follow it.
    pub pools: Vec<String>,
    /// Backends (or addresses) in its last good set.
    pub backends: usize,
    /// Changes of its set, the first one included.
    pub changes: u64,
    /// Rounds that failed.
    pub failures: u64,
    /// Failed rounds in a row, now.
    pub failing: u32,
    /// Why the last failed round failed, while failing.
    pub last_error: Option<String>,
    /// When its set last changed (Unix seconds).
    pub last_change_unix: Option<u64>,
    /// When a round last succeeded (Unix seconds).
    pub last_success_unix: Option<u64>,
    /// SRV targets its answer had beyond what one round resolves.
    pub cut: usize,
}

/// What merging left out of a pool, as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolNote {
    /// The pool.
    pub pool: String,
    /// Discovered backends beyond `max_backends`.
    pub cut: usize,
    /// Discovered backends on another port than the pool's XDP listener's.
    pub wrong_port: usize,
}

/// Discovery as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryStatus {
    /// Every source the config names.
    pub sources: Vec<SourceStatus>,
    /// Pools that merging left backends out of.
    #[serde(default)]
    pub left_out: Vec<PoolNote>,
}

impl DiscoveryStatus {
    /// Whether no pool discovers anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

struct Source {
    task: JoinHandle<()>,
    last: Option<Found>,
    status: SourceStatus,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every source of the running config.
pub struct Registry {
    sources: BTreeMap<SourceKey, Source>,
    reports: mpsc::Sender<Report>,
    left: BTreeMap<String, merge::Left>,
}

impl Registry {
    /// A registry whose tasks report to `reports`.
    #[must_use]
    pub fn new(reports: mpsc::Sender<Report>) -> Self {
        Self {
            sources: BTreeMap::new(),
            reports,
            left: BTreeMap::new(),
        }
    }

    /// Runs a task for every source `config` names: those already running
    /// go on with their sets, those no pool names any more stop.
    pub fn follow(&mut self, config: &Config) {
        let keys = SourceKey::all(config);
        self.sources.retain(|k, _| keys.contains(k));
        for key in keys {
            let pools = config
                .pools
                .iter()
                .filter(|p| {
                    p.discover.as_ref().is_some_and(|d| match &key {
                        SourceKey::Dns(q) => d.dns.as_ref().is_some_and(|d| d.query == *q),
                        SourceKey::File(f) => d.file.as_ref() == Some(f),
                    })
                })
                .map(|p| p.name.clone())
                .collect();
            let reports = self.reports.clone();
            let source = self.sources.entry(key.clone()).or_insert_with(|| Source {
                task: match &key {
                    SourceKey::Dns(q) => tokio::spawn(dns::follow(q.clone(), reports)),
                    SourceKey::File(p) => tokio::spawn(file::follow(p.clone(), reports)),
                },
                last: None,
                status: SourceStatus {
                    source: key.kind().to_owned(),
                    target: key.target(),
                    ..SourceStatus::default()
                },
            });
            source.status.pools = pools;
        }
    }

    /// Takes a round's outcome; true when the source's set changed. A
    /// failure keeps the last good set.
    pub fn take(&mut self, report: Report) -> bool {
        // A task stopped by a reload may have sent one last report.
        let Some(source) = self.sources.get_mut(&report.key) else {
            return false;
        };
        let s = &mut source.status;
        let now = unix_now();
        match report.outcome {
            Ok(found) => {
                if s.failing > 0 {
                    info!(source = %s.source, target = %s.target, failed = s.failing,
                        "discovery works again");
                }
                s.failing = 0;
                s.last_error = None;
                s.last_success_unix = Some(now);
                let changed = !source.last.as_ref().is_some_and(|l| l.same_set(&found));
                if changed {
                    s.changes += 1;
                    s.last_change_unix = Some(now);
                    s.backends = found.len();
                    s.cut = match &found {
                        Found::Dns(a) => a.cut,
                        Found::File(_) => 0,
                    };
                    if s.cut > 0 {
                        warn!(source = %s.source, target = %s.target, cut = s.cut,
                            "the answer names more SRV targets than one round resolves; the rest are left out");
                    }
                }
                source.last = Some(found);
                changed
            }
            Err(e) => {
                s.failures += 1;
                s.failing += 1;
                if s.failing == 1 {
                    let kept = source.last.as_ref().map_or(0, Found::len);
                    warn!(source = %s.source, target = %s.target, error = %e, kept,
                        "discovery failed; its pools keep the last good set until it works again");
                }
                s.last_error = Some(e);
                false
            }
        }
    }

    /// Waits up to `deadline` for the first round of every source (taking
    /// each report), so a daemon starts with the sets its sources give.
    pub async fn first_rounds(&mut self, reports: &mut mpsc::Receiver<Report>, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        while self
            .sources
            .values()
            .any(|s| s.status.last_success_unix.is_none() && s.status.failures == 0)
        {
            match tokio::time::timeout_at(end, reports.recv()).await {
                Ok(Some(report)) => {
                    self.take(report);
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// The config to serve: `file` with the last good sets merged in (see
    /// [`merge::merge`]; pools of XDP listeners, when `xdp_running`, take
    /// only their ports; `serving` stands in for sources with no answer
    /// yet). What merging leaves out of a pool is logged when it changes.
    pub fn merge(&mut self, file: &Config, xdp_running: bool, serving: Option<&Config>) -> Config {
        let found: HashMap<SourceKey, Found> = self
            .sources
            .iter()
            .filter_map(|(k, s)| s.last.clone().map(|f| (k.clone(), f)))
            .collect();
        let ports = merge::xdp_ports(file, xdp_running);
        let (config, left) = merge::merge(file, &found, &ports, serving);
        for (pool, l) in &left {
            if self.left.get(pool) != Some(l) && (l.cut > 0 || l.wrong_port > 0) {
                let max = file
                    .pools
                    .iter()
                    .find(|p| &p.name == pool)
                    .and_then(|p| p.discover.as_ref())
                    .map_or(0, |d| d.max_backends);
                warn!(%pool, over_max_backends = l.cut, max_backends = max, wrong_port = l.wrong_port,
                    "discovered backends left out of the pool (over `max_backends`, or on another port than its XDP listener's)");
            }
        }
        self.left = left;
        config
    }

    /// Every source and what merging left out, for status.
    #[must_use]
    pub fn status(&self) -> DiscoveryStatus {
        DiscoveryStatus {
            sources: self.sources.values().map(|s| s.status.clone()).collect(),
            left_out: self.notes(),
        }
    }

    fn notes(&self) -> Vec<PoolNote> {
        self.left
            .iter()
            .filter(|(_, l)| l.cut > 0 || l.wrong_port > 0)
            .map(|(pool, l)| PoolNote {
                pool: pool.clone(),
                cut: l.cut,
                wrong_port: l.wrong_port,
            })
            .collect()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
