//! The registry over a real file source: one task for the pools that
//! share it, the cap, and a bad write that keeps the last good set.

use std::{fmt::Write as _, time::Duration};

use tokio::sync::mpsc;

use super::{PoolNote, Registry};
use crate::config::{self, Config};

fn config(file: &std::path::Path) -> Config {
    config::parse(
        &format!(
            "version: 1
listeners:
  - {{ name: a, protocol: tcp, address: \"127.0.0.1:8080\", pool: a }}
  - {{ name: b, protocol: tcp, address: \"127.0.0.1:8081\", pool: b }}
pools:
  - name: a
    discover: {{ file: {f}, max_backends: 3 }}
  - name: b
    discover: {{ file: {f} }}
",
            f = file.display()
        ),
        "t.yaml",
    )
    .expect("valid")
}

fn write(file: &std::path::Path, hosts: std::ops::RangeInclusive<u8>) {
    let list = hosts.fold(String::new(), |mut out, h| {
        let _ = writeln!(out, "  - address: 198.18.0.{h}:80");
        out
    });
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("backends:\n{list}")).expect("write");
    std::fs::rename(&tmp, file).expect("rename");
}

fn sizes(c: &Config) -> Vec<usize> {
    c.pools.iter().map(|p| p.backends.len()).collect()
}

async fn next(reports: &mut mpsc::Receiver<super::Report>) -> super::Report {
    tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("a report within 5 s")
        .expect("the task runs")
}

#[tokio::test]
async fn a_shared_file_source_is_cut_per_pool_and_a_bad_write_keeps_the_last_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backends.yaml");
    write(&file, 1..=5);
    let read = config(&file);
    let (tx, mut reports) = mpsc::channel(8);
    let mut r = Registry::new(tx);
    r.follow(&read);
    let status = r.status();
    assert_eq!(status.sources.len(), 1, "one task for both pools");
    assert_eq!(status.sources[0].pools, ["a", "b"]);

    r.first_rounds(&mut reports, Duration::from_secs(5)).await;
    assert_eq!(sizes(&r.merge(&read, false, None)), [3, 5]);
    assert_eq!(
        r.status().left_out,
        [PoolNote {
            pool: "a".into(),
            cut: 2,
            wrong_port: 0
        }]
    );

    std::fs::write(&file, "backends:\n  - address: nowhere\n").expect("write");
    assert!(
        !r.take(next(&mut reports).await),
        "a failure changes nothing"
    );
    let s = &r.status().sources[0];
    assert_eq!((s.failing, s.failures, s.backends), (1, 1, 5));
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("backends.yaml:2:"), "{error}");
    assert_eq!(sizes(&r.merge(&read, false, None)), [3, 5]);

    write(&file, 1..=2);
    assert!(r.take(next(&mut reports).await));
    assert_eq!(sizes(&r.merge(&read, false, None)), [2, 2]);
    let s = &r.status().sources[0];
    assert_eq!(
        (s.failing, s.changes, s.last_error.as_deref()),
        (0, 2, None)
    );

    // A config without the source stops its task.
    let plain = config::parse(
        "version: 1\nlisteners:\n  - { name: a, protocol: tcp, address: \"127.0.0.1:8080\", pool: a }\npools:\n  - { name: a, backends: [{ address: \"198.18.0.1:80\" }] }\n",
        "t.yaml",
    )
    .expect("valid");
    r.follow(&plain);
    assert!(r.status().is_empty());
}
