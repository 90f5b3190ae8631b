//! Runtime guard lists: the file's rules hold for API entries, removals
//! touch only API entries, and reloads keep what still stands.

use super::{Added, List, ListChange, ListError, Lists, Scope};
use crate::config::{self, Config, values::cidr};

fn file(extra: &str) -> Config {
    let yaml = format!(
        "version: 1
guard:
  deny: [198.18.9.0/24]
  martians: [198.19.255.0/24]
{extra}listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    pool: web
    guard: {{ allow: [198.18.64.0/18] }}
  - {{ name: dns, address: 198.18.0.10:53, protocol: udp, pool: web }}
pools:
  - name: web
    algorithm: maglev
    backends: [{{ address: 198.18.1.11:80 }}]
"
    );
    config::parse(&yaml, "t.yaml").expect("config")
}

fn add(scope: &Scope, list: List, c: &str) -> ListChange {
    ListChange::Add(at(scope, list, c))
}

fn at(scope: &Scope, list: List, c: &str) -> Added {
    Added {
        scope: scope.clone(),
        list,
        cidr: cidr(c).expect("cidr"),
    }
}

fn web() -> Scope {
    Scope::Listener("web".into())
}

#[test]
fn entries_join_the_lists_the_program_is_given() {
    let f = file("");
    let l = Lists::default();
    let l = l
        .change(&f, &add(&Scope::Global, List::Deny, "fd00:66::/64"))
        .expect("ok")
        .expect("changed");
    let l = l
        .change(&f, &add(&web(), List::Deny, "198.18.64.66"))
        .expect("ok")
        .expect("changed");
    let c = l.apply(&f);
    let texts =
        |v: &[crate::config::model::Cidr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(texts(&c.guard.deny), ["198.18.9.0/24", "fd00:66::/64"]);
    assert_eq!(
        texts(&c.listeners[0].guard.deny),
        ["198.18.64.66/32"],
        "a hole in the listener's allowed range"
    );
    let v = l.view(&f);
    assert_eq!(v.global.deny.file, ["198.18.9.0/24"]);
    assert_eq!(v.global.deny.added, ["fd00:66::/64"]);
    assert_eq!(v.listeners["web"].allow.file, ["198.18.64.0/18"]);
    assert_eq!(v.listeners["web"].deny.added, ["198.18.64.66/32"]);
}

#[test]
fn repeating_an_entry_changes_nothing() {
    let f = file("");
    let l = Lists::default()
        .change(&f, &add(&Scope::Global, List::Deny, "198.18.5.0/24"))
        .expect("ok")
        .expect("changed");
    assert_eq!(
        l.change(&f, &add(&Scope::Global, List::Deny, "198.18.5.0/24")),
        Ok(None)
    );
    // Already in the file.
    assert_eq!(
        l.change(&f, &add(&Scope::Global, List::Deny, "198.18.9.0/24")),
        Ok(None)
    );
}

#[test]
fn overlaps_are_refused_with_the_entry_they_hit() {
    let f = file("");
    let l = Lists::default();
    let inside = l
        .change(&f, &add(&Scope::Global, List::Deny, "198.18.9.128/25"))
        .expect_err("inside a file entry");
    assert!(
        matches!(&inside, ListError::Conflict(m) if m.contains("guard.deny[0]")),
        "{inside}"
    );
    assert_eq!(inside.status(), 409);
    let dead = l
        .change(&f, &add(&web(), List::Allow, "198.18.9.0/25"))
        .expect_err("allow inside a global deny");
    assert!(dead.to_string().contains("never admit"), "{dead}");
    let martian = l
        .change(&f, &add(&Scope::Global, List::Allow, "198.19.255.7"))
        .expect_err("allow inside a martian");
    assert!(
        martian.to_string().contains("guard.martians[0]"),
        "{martian}"
    );
    // A global deny covering a listener's allow range would make it dead.
    let covering = l
        .change(&f, &add(&Scope::Global, List::Deny, "198.18.64.0/18"))
        .expect_err("covers web's allow list");
    assert!(
        covering.to_string().contains("listener `web`"),
        "{covering}"
    );
    // Between two API entries, too.
    let l = l
        .change(&f, &add(&Scope::Global, List::Deny, "fd00:1::/32"))
        .expect("ok")
        .expect("changed");
    let e = l
        .change(&f, &add(&Scope::Global, List::Deny, "fd00:1:2::/48"))
        .expect_err("inside an API entry");
    assert!(e.to_string().contains("admin API"), "{e}");
}

#[test]
fn removal_touches_only_api_entries() {
    let f = file("");
    let l = Lists::default()
        .change(&f, &add(&web(), List::Deny, "198.18.64.7"))
        .expect("ok")
        .expect("changed");
    let gone = l
        .change(
            &f,
            &ListChange::Remove(at(&web(), List::Deny, "198.18.64.7")),
        )
        .expect("ok")
        .expect("changed");
    assert!(gone.added().is_empty());
    let file_entry = l
        .change(
            &f,
            &ListChange::Remove(at(&Scope::Global, List::Deny, "198.18.9.0/24")),
        )
        .expect_err("from the file");
    assert!(
        matches!(&file_entry, ListError::FromFile { at, .. } if at == "guard.deny[0]"),
        "{file_entry}"
    );
    let missing = l
        .change(
            &f,
            &ListChange::Remove(at(&Scope::Global, List::Allow, "198.18.64.7")),
        )
        .expect_err("not there");
    assert_eq!(missing.status(), 404);
    let nobody = l
        .change(
            &f,
            &add(&Scope::Listener("nope".into()), List::Deny, "fd00::1"),
        )
        .expect_err("no listener");
    assert_eq!(nobody, ListError::NoListener("nope".into()));
}

#[test]
fn a_reload_keeps_what_still_stands() {
    let f = file("");
    let mut l = Lists::default();
    for (scope, c) in [
        (Scope::Global, "198.18.5.0/24"),
        (Scope::Global, "198.18.6.0/24"),
        (Scope::Global, "fd00:7::/64"),
        (web(), "198.18.64.9"),
    ] {
        l = l
            .change(&f, &add(&scope, List::Deny, c))
            .expect("ok")
            .expect("changed");
    }
    // The new file holds one entry itself, covers another, and has lost
    // the `web` listener.
    let reloaded = config::parse(
        "version: 1
guard:
  deny: [198.18.5.0/24, fd00::/16]
listeners:
  - { name: dns, address: 198.18.0.10:53, protocol: udp, pool: web }
pools:
  - name: web
    algorithm: maglev
    backends: [{ address: 198.18.1.11:53 }]
",
        "t.yaml",
    )
    .expect("config");
    let (kept, dropped) = l.rebase(&reloaded);
    assert_eq!(
        kept.added(),
        [at(&Scope::Global, List::Deny, "198.18.6.0/24")]
    );
    assert_eq!(dropped.len(), 3, "{dropped:?}");
    assert!(dropped[0].contains("now holds it at guard.deny[0]"));
    assert!(dropped[1].contains("guard.deny[1]"), "{}", dropped[1]);
    assert!(dropped[2].contains("no listener named `web`"));
}
