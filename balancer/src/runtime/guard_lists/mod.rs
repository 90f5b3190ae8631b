//! Guard list entries added through the admin API. They sit beside the
//! config file's lists and obey the same rules (no overlap that makes an
//! entry meaningless), so the XDP program sees one consistent set. They
//! survive reloads, where an entry the new file contradicts or now holds
//! itself is dropped with a warning, and upgrades ([`carry`]), and are
//! lost at a restart: the file is where permanent entries belong.

pub mod carry;

use serde::Serialize;

use crate::config::{
    Config,
    guard::{ListKind, ListedEntry, conflict_of, global_entries, listener_entries},
    model::Cidr,
};

/// Entries the admin API may hold in all; the XDP list map keeps room for
/// them beyond the config's.
pub const MAX_ADDED: usize = 4096;

/// Where an entry applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every listener (`guard.deny`, `guard.allow`).
    Global,
    /// One listener, by name (`listeners[].guard`).
    Listener(String),
}

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// Refused sources.
    Deny,
    /// The only admitted sources, once the list has an entry.
    Allow,
}

impl List {
    /// The list's key in the config.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            List::Deny => "deny",
            List::Allow => "allow",
        }
    }

    const fn kind(self) -> ListKind {
        match self {
            List::Deny => ListKind::Deny,
            List::Allow => ListKind::Allow,
        }
    }
}

/// One entry added through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// Where it applies.
    pub scope: Scope,
    /// Which list.
    pub list: List,
    /// The prefix.
    pub cidr: Cidr,
}

/// What an operator asks of the lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListChange {
    /// Show every list, from the file and from the API.
    Show,
    /// Add an entry.
    Add(Added),
    /// Remove an entry the API added.
    Remove(Added),
}

/// Why a change was refused; nothing changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The scope names no listener.
    #[error("no listener named `{0}`")]
    NoListener(String),
    /// The entry would make itself or another meaningless.
    #[error("{0}")]
    Conflict(String),
    /// The entry comes from the config file.
    #[error("`{cidr}` is in the config file at {at}; remove it there and reload")]
    FromFile {
        /// The prefix.
        cidr: Cidr,
        /// Its field.
        at: String,
    },
    /// No such entry.
    #[error("`{0}` is not on that list")]
    Missing(Cidr),
    /// The API's entries fill the room the list map keeps for them.
    #[error(
        "the admin API already holds {MAX_ADDED} list entries; summarise them into shorter prefixes or move them into the config file"
    )]
    Full,
    /// There is no XDP program to hold the lists.
    #[error(
        "guard lists are enforced by the XDP program, and the config has no `xdp` section; add one and restart"
    )]
    NoXdp,
    /// The maps could not be written.
    #[error("cannot write the XDP maps: {0}; the lists are unchanged")]
    Write(String),
}

impl ListError {
    /// The HTTP status code.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            ListError::NoListener(_) | ListError::Missing(_) => 404,
            ListError::Conflict(_) | ListError::FromFile { .. } | ListError::NoXdp => 409,
            ListError::Full => 507,
            ListError::Write(_) => 500,
        }
    }
}

/// One list as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListView {
    /// Entries from the config file.
    pub file: Vec<String>,
    /// Entries added through the API.
    pub added: Vec<String>,
}

/// The lists of one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScopeView {
    /// `deny`.
    pub deny: ListView,
    /// `allow`.
    pub allow: ListView,
}

/// Every list, as `GET /guard` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListsView {
    /// The global lists.
    pub global: ScopeView,
    /// Each listener's own lists, for listeners that have any.
    pub listeners: std::collections::BTreeMap<String, ScopeView>,
}

/// The entries added through the API, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists {
    added: Vec<Added>,
}

impl Lists {
    /// The entries, oldest first.
    #[must_use]
    pub fn added(&self) -> &[Added] {
        &self.added
    }

    /// The lists after `change` against the config `file`, or `None` when
    /// it changes nothing (the entry is already there).
    pub fn change(&self, file: &Config, change: &ListChange) -> Result<Option<Lists>, ListError> {
        match change {
            ListChange::Show => Ok(None),
            ListChange::Add(new) => {
                if self.added.contains(new) {
                    return Ok(None);
                }
                if in_file(file, new)?.is_some() {
                    return Ok(None);
                }
                if self.added.len() >= MAX_ADDED {
                    return Err(ListError::Full);
                }
                refusal(file, &self.added, new)?;
                let mut next = self.clone();
                next.added.push(new.clone());
                Ok(Some(next))
            }
            ListChange::Remove(old) => {
                if let Some(i) = self.added.iter().position(|a| a == old) {
                    let mut next = self.clone();
                    next.added.remove(i);
                    return Ok(Some(next));
                }
                match in_file(file, old)? {
                    Some(at) => Err(ListError::FromFile { cidr: old.cidr, at }),
                    None => Err(ListError::Missing(old.cidr)),
                }
            }
        }
    }

    /// The entries that still stand beside a reloaded `file`, and why each
    /// other one was dropped.
    #[must_use]
    pub fn rebase(&self, file: &Config) -> (Lists, Vec<String>) {
        let mut kept = Lists::default();
        let mut dropped = Vec::new();
        for a in &self.added {
            let why = match in_file(file, a) {
                Ok(Some(at)) => Some(format!("the config file now holds it at {at}")),
                Ok(None) => refusal(file, &kept.added, a).err().map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            match why {
                Some(why) => dropped.push(format!(
                    "dropped the admin API's {} entry `{}`: {why}",
                    path(&a.scope, a.list),
                    a.cidr
                )),
                None => kept.added.push(a.clone()),
            }
        }
        (kept, dropped)
    }

    /// `file` with these entries added to its lists: what the XDP program
    /// is given. Entries were checked against `file` when added or rebased.
    #[must_use]
    pub fn apply(&self, file: &Config) -> Config {
        let mut c = file.clone();
        for a in &self.added {
            let (deny, allow) = match &a.scope {
                Scope::Global => (&mut c.guard.deny, &mut c.guard.allow),
                Scope::Listener(name) => {
                    let Some(l) = c.listeners.iter_mut().find(|l| &l.name == name) else {
                        continue;
                    };
                    (&mut l.guard.deny, &mut l.guard.allow)
                }
            };
            match a.list {
                List::Deny => deny.push(a.cidr),
                List::Allow => allow.push(a.cidr),
            }
        }
        c
    }

    /// Every list of `file` and these entries.
    #[must_use]
    pub fn view(&self, file: &Config) -> ListsView {
        let texts = |v: &[Cidr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut view = ListsView {
            global: ScopeView {
                deny: ListView {
                    file: texts(&file.guard.deny),
                    added: Vec::new(),
                },
                allow: ListView {
                    file: texts(&file.guard.allow),
                    added: Vec::new(),
                },
            },
            listeners: std::collections::BTreeMap::new(),
        };
        for l in &file.listeners {
            if !l.guard.deny.is_empty() || !l.guard.allow.is_empty() {
                let s = view.listeners.entry(l.name.clone()).or_default();
                s.deny.file = texts(&l.guard.deny);
                s.allow.file = texts(&l.guard.allow);
            }
        }
        for a in &self.added {
            let s = match &a.scope {
                Scope::Global => &mut view.global,
                Scope::Listener(name) => view.listeners.entry(name.clone()).or_default(),
            };
            let list = match a.list {
                List::Deny => &mut s.deny,
                List::Allow => &mut s.allow,
            };
            list.added.push(a.cidr.to_string());
        }
        view
    }
}

/// The config path of a scope's list, for messages.
#[must_use]
pub fn path(scope: &Scope, list: List) -> String {
    match scope {
        Scope::Global => format!("guard.{}", list.name()),
        Scope::Listener(name) => format!("listener `{name}` guard.{}", list.name()),
    }
}

fn listener_index(file: &Config, name: &str) -> Result<usize, ListError> {
    file.listeners
        .iter()
        .position(|l| l.name == name)
        .ok_or_else(|| ListError::NoListener(name.to_owned()))
}

/// Where the config file holds exactly `a`, if it does.
fn in_file(file: &Config, a: &Added) -> Result<Option<String>, ListError> {
    Ok(scope_entries(file, &[], &a.scope)?
        .into_iter()
        .find(|e| e.kind == a.list.kind() && e.cidr == a.cidr)
        .map(|e| e.at))
}

fn entry(a: &Added) -> ListedEntry {
    ListedEntry {
        at: format!("added through the admin API to {}", path(&a.scope, a.list)),
        kind: a.list.kind(),
        cidr: a.cidr,
    }
}

/// The entries of `scope`: the file's, then those in `added`.
fn scope_entries(
    file: &Config,
    added: &[Added],
    scope: &Scope,
) -> Result<Vec<ListedEntry>, ListError> {
    let mut out = match scope {
        Scope::Global => global_entries(&file.guard),
        Scope::Listener(name) => {
            let i = listener_index(file, name)?;
            listener_entries(&file.listeners[i].guard, i)
        }
    };
    out.extend(added.iter().filter(|a| &a.scope == scope).map(entry));
    Ok(out)
}

/// Why `new` cannot join the lists of `file` and `added`, if it cannot:
/// it overlaps an entry of its scope, an allow entry of a listener sits
/// inside it (a new global deny), or it sits inside a global deny.
fn refusal(file: &Config, added: &[Added], new: &Added) -> Result<(), ListError> {
    let same = scope_entries(file, added, &new.scope)?;
    let global = match new.scope {
        Scope::Global => Vec::new(),
        Scope::Listener(_) => scope_entries(file, added, &Scope::Global)?,
    };
    let e = entry(new);
    if let Some(why) = conflict_of(&e, &same, &global) {
        return Err(ListError::Conflict(why));
    }
    if new.scope == Scope::Global {
        for l in &file.listeners {
            let own = scope_entries(file, added, &Scope::Listener(l.name.clone()))?;
            if let Some(why) = own
                .iter()
                .find_map(|b| conflict_of(b, &[], std::slice::from_ref(&e)))
            {
                return Err(ListError::Conflict(format!(
                    "it would leave listener `{}` with a dead entry: {why}",
                    l.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
