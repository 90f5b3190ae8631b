//! The admin API's guard entries carried across `run --upgrade`: the
//! running daemon keeps them in `state_dir/guard-added.json` after each
//! change, and the daemon that upgrades it adds them again before it
//! serves. A plain start removes the file, so a restart still begins from
//! the config file alone, as documented.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{Added, List, Lists, Scope};

/// The file's name in the state directory.
pub const FILE: &str = "guard-added.json";

/// Where the entries are kept for `state_dir`.
#[must_use]
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Writes `lists`' entries to `path` (through a temporary file and a
/// rename, so a reader never sees half a file).
pub fn save(lists: &Lists, path: &Path) -> io::Result<()> {
    let entries: Vec<serde_json::Value> = lists
        .added()
        .iter()
        .map(|a| {
            serde_json::json!({
                "listener": match &a.scope {
                    Scope::Global => None,
                    Scope::Listener(name) => Some(name),
                },
                "list": a.list.name(),
                "cidr": a.cidr.to_string(),
            })
        })
        .collect();
    let text = serde_json::to_vec_pretty(&entries).map_err(io::Error::other)?;
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// Reads the entries `save` wrote; an entry that does not parse is
/// reported and skipped, the rest are kept.
#[must_use]
pub fn parse(text: &str) -> (Vec<Added>, Vec<String>) {
    let mut added = Vec::new();
    let mut bad = Vec::new();
    let entries: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (added, vec![format!("not a list of entries: {e}")]),
    };
    for (i, e) in entries.iter().enumerate() {
        let list = match e["list"].as_str() {
            Some("deny") => List::Deny,
            Some("allow") => List::Allow,
            other => {
                bad.push(format!(
                    "entry {i}: list {other:?} is neither deny nor allow"
                ));
                continue;
            }
        };
        let scope = match &e["listener"] {
            serde_json::Value::Null => Scope::Global,
            serde_json::Value::String(name) => Scope::Listener(name.clone()),
            other => {
                bad.push(format!("entry {i}: listener {other} is not a name"));
                continue;
            }
        };
        match crate::config::values::cidr(e["cidr"].as_str().unwrap_or_default()) {
            Ok(cidr) => added.push(Added { scope, list, cidr }),
            Err(why) => bad.push(format!("entry {i}: {why}")),
        }
    }
    (added, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_saved_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path());
        let entries = vec![
            Added {
                scope: Scope::Global,
                list: List::Deny,
                cidr: crate::config::values::cidr("198.18.0.200").expect("cidr"),
            },
            Added {
                scope: Scope::Listener("web one".into()),
                list: List::Allow,
                cidr: crate::config::values::cidr("fd00::/64").expect("cidr"),
            },
        ];
        save(
            &Lists {
                added: entries.clone(),
            },
            &file,
        )
        .expect("save");
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(parse(&text), (entries, vec![]));
        let (none, bad) = parse(
            r#"[{"list": "block", "cidr": "198.18.0.1"}, {"list": "deny", "cidr": "198.18.0.1/8"}]"#,
        );
        assert!(none.is_empty());
        assert!(
            bad[0].contains("block") && bad[1].contains("entry 1"),
            "{bad:?}"
        );
        assert!(parse("{").1[0].contains("not a list"));
    }
}
