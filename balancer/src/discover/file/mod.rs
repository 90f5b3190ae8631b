//! File discovery: the file named by `discover.file` is read at start and
//! again whenever inotify says it changed. The watch is on its directory,
//! so a file replaced by a rename (as editors and config tools write) is
//! seen like one written in place. Each read is reported: a valid file as
//! its backends, an invalid one as its error with `file:line:column`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use notify::{
    EventKind, RecursiveMode, Watcher as _,
    event::{AccessKind, AccessMode},
};
use tokio::sync::mpsc;

use super::{Found, Report, SourceKey};
use crate::config::backends_file;

/// Writes that come in a burst (truncate, then write, then close) are
/// read once, this long after the last.
const SETTLE: Duration = Duration::from_millis(50);
/// How often a watch that could not be set up is tried again (a missing
/// directory, say), reading the file each time.
const RETRY: Duration = Duration::from_secs(2);

/// Follows the file at `path` until the receiver of `reports` is gone (or
/// the task is aborted).
pub async fn follow(path: PathBuf, reports: mpsc::Sender<Report>) {
    let key = SourceKey::File(path.clone());
    let (tx, mut changed) = mpsc::channel::<()>(16);
    let mut watcher = None;
    let mut unwatched = false;
    loop {
        if watcher.is_none() {
            match watch(&path, tx.clone()) {
                Ok(w) => {
                    if unwatched {
                        tracing::info!(file = %path.display(), "watching the discovery file again");
                    }
                    watcher = Some(w);
                    unwatched = false;
                }
                // Said once per streak; the file is read on each retry.
                Err(e) if !unwatched => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot watch the discovery file; reading it every {RETRY:?} instead");
                    unwatched = true;
                }
                Err(_) => {}
            }
        }
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || backends_file::load(&path)).await
        };
        let outcome = match read {
            Ok(Ok(set)) => Ok(Found::File(set)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("reading stopped: {e}")),
        };
        if reports
            .send(Report {
                key: key.clone(),
                outcome,
            })
            .await
            .is_err()
        {
            return;
        }
        if watcher.is_none() {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        if changed.recv().await.is_none() {
            return;
        }
        while tokio::time::timeout(SETTLE, changed.recv())
            .await
            .is_ok_and(|m| m.is_some())
        {}
    }
}

/// An inotify watch on `path`'s directory that signals `tx` for changes to
/// `path`'s name in it.
fn watch(path: &Path, tx: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("`{}` has no directory to watch", path.display()))?;
    let name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reads (this task's own among them) are not changes.
        let change = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if change
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            // A full queue already holds a wake-up.
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| format!("cannot watch `{}`: {e}", dir.display()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| {
            format!(
                "cannot watch `{}`: {e} (the directory must exist; retrying)",
                dir.display()
            )
        })?;
    Ok(watcher)
}
