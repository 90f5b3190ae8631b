//! DNS discovery: one task per distinct [`DnsQuery`] asks its servers at
//! the records' TTL (bounded by the query's intervals) and reports every
//! round; pools that name the same query share the task.

pub mod lookup;
pub mod schedule;
pub mod srv;

use std::time::Duration;

use tokio::sync::mpsc;

use self::lookup::{Answer, LookupError};
use super::{Found, Report, SourceKey};
use crate::config::discover::DnsQuery;

/// Asks `query` until the receiver of `reports` is gone (or the task is
/// aborted, when no pool names the query any more).
pub async fn follow(query: DnsQuery, reports: mpsc::Sender<Report>) {
    let key = SourceKey::Dns(query.clone());
    let mut streak = 0u32;
    let mut resolver = None;
    loop {
        if resolver.is_none() {
            match lookup::resolver(&query) {
                Ok(r) => resolver = Some(r),
                Err(e) => {
                    streak += 1;
                    if !send(&reports, &key, Err(e)).await {
                        return;
                    }
                    tokio::time::sleep(wait(&query, streak, None)).await;
                    continue;
                }
            }
        }
        let Some(r) = &resolver else { continue };
        let outcome = round(r, &query).await;
        let ttl = outcome.as_ref().ok().map(|a| a.ttl);
        streak = if ttl.is_some() { 0 } else { streak + 1 };
        let outcome = outcome.map(Found::Dns).map_err(|e| e.to_string());
        if !send(&reports, &key, outcome).await {
            return;
        }
        tokio::time::sleep(wait(&query, streak, ttl)).await;
    }
}

/// One round, with an empty answer accepted only where the query allows it.
async fn round(
    resolver: &hickory_resolver::TokioResolver,
    query: &DnsQuery,
) -> Result<Answer, LookupError> {
    match lookup::lookup(resolver, query).await {
        Err(LookupError::Empty(_)) if query.allow_empty => Ok(Answer {
            targets: Vec::new(),
            ttl: query.min_interval,
            cut: 0,
        }),
        other => other,
    }
}

fn wait(query: &DnsQuery, streak: u32, ttl: Option<Duration>) -> Duration {
    match ttl {
        Some(ttl) => schedule::after_success(ttl, query.min_interval, query.max_interval),
        None => schedule::after_failure(streak, query.min_interval, query.max_interval),
    }
}

async fn send(
    reports: &mpsc::Sender<Report>,
    key: &SourceKey,
    outcome: Result<Found, String>,
) -> bool {
    reports
        .send(Report {
            key: key.clone(),
            outcome,
        })
        .await
        .is_ok()
}
