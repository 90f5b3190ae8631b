//! Certificate files watched on disk: renewal tools (certbot, acme.sh,
//! cert-manager's sidecars) rewrite them in place and expect the server to
//! notice. Every few seconds the daemon stamps each file its TLS reads
//! (modification time, size, inode); a change that holds for two looks in
//! a row (so a certificate and its key written one after the other are
//! read together) rebuilds the listeners' TLS from the files, as a reload
//! would, without reading the config file again. Polling rather than
//! inotify: it sees files replaced by a rename, files on any filesystem,
//! and directories that did not exist yet, at the cost of a few `stat`s.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use crate::config::Config;

/// How often the files are looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// One file's stamp: it changed when this did. `None` when it cannot be
/// read (removed, or not there yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The stamps of every file a config's TLS reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamps(BTreeMap<PathBuf, Option<Stamp>>);

impl Stamps {
    /// The stamps of `config`'s certificate, key and client CA files, now.
    #[must_use]
    pub fn of(config: &Config) -> Self {
        let mut files = BTreeMap::new();
        for tls in config
            .listeners
            .iter()
            .filter_map(|l| l.http.as_ref()?.tls.as_ref())
        {
            let paths = tls
                .certificates
                .iter()
                .flat_map(|c| [&c.cert, &c.key])
                .chain(tls.client_auth.as_ref().map(|a| &a.ca));
            for p in paths {
                files.insert(p.clone(), stamp(p));
            }
        }
        Self(files)
    }

    /// Whether the config reads no TLS file.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// What the watcher decides at each look.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// Nothing changed since the files were last read.
    Same,
    /// Something changed; look again before reading.
    Settling,
    /// The change held: read the files again.
    Changed,
}

/// The files as last read, and a change seen once.
#[derive(Debug, Default)]
pub struct Watch {
    read: Stamps,
    seen: Option<Stamps>,
}

impl Watch {
    /// Watching the files as they are now (just read).
    #[must_use]
    pub fn new(now: Stamps) -> Self {
        Self {
            read: now,
            seen: None,
        }
    }

    /// What to do given the stamps `now`.
    pub fn look(&mut self, now: Stamps) -> Look {
        if now == self.read {
            self.seen = None;
            return Look::Same;
        }
        if self.seen.as_ref() != Some(&now) {
            self.seen = Some(now);
            return Look::Settling;
        }
        self.read = now;
        self.seen = None;
        Look::Changed
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::PathBuf};

    use super::{Look, Stamp, Stamps, Watch};

    fn stamps(len: u64) -> Stamps {
        let s = Stamp {
            modified: None,
            len,
            inode: 1,
        };
        Stamps(BTreeMap::from([(PathBuf::from("/c.pem"), Some(s))]))
    }

    #[test]
    fn a_change_is_read_once_it_holds_for_two_looks() {
        let mut w = Watch::new(stamps(1));
        assert_eq!(w.look(stamps(1)), Look::Same);
        // The certificate is written; the key is still being written.
        assert_eq!(w.look(stamps(2)), Look::Settling);
        assert_eq!(w.look(stamps(3)), Look::Settling);
        assert_eq!(w.look(stamps(3)), Look::Changed);
        assert_eq!(w.look(stamps(3)), Look::Same);
        // A change that goes back before it held is nothing.
        assert_eq!(w.look(stamps(4)), Look::Settling);
        assert_eq!(w.look(stamps(3)), Look::Same);
    }
}
