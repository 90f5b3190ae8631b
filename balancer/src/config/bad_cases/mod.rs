//! The bad-config table: each case is a small edit of the valid base
//! document, the line the error must name, the field, and a fragment of the
//! message. One file per section of the file, as in [`super::validate`];
//! the runner here loads every case and checks the issue it produces.

mod announce;
mod guard;
mod health;
mod http;
mod listeners;
mod pool_tls;
mod pools;
mod sni;
mod tls;
mod top;
mod xdp;

use super::tests::{append, errors, replace};

/// `(description, document, line, field, fragment of the message)`.
type Case = (&'static str, String, usize, &'static str, &'static str);

/// Every bad-config case.
fn cases() -> Vec<Case> {
    [
        top::cases(),
        announce::cases(),
        listeners::cases(),
        pools::cases(),
        health::cases(),
        xdp::cases(),
        guard::cases(),
        http::cases(),
        tls::cases(),
        sni::cases(),
        pool_tls::cases(),
    ]
    .concat()
}

#[test]
fn bad_configs_name_line_and_field() {
    let cases = cases();
    assert!(cases.len() >= 30, "keep at least 30 bad-config cases");
    for (what, doc, line, field, fragment) in cases {
        let issues = errors(&doc);
        let hit = issues
            .iter()
            .find(|i| i.field == field && i.message.contains(fragment))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no issue with field `{field}` containing `{fragment}` in {issues:#?}"
                )
            });
        assert_eq!(hit.line, line, "{what}: wrong line in `{hit}`");
        assert!(hit.column >= 1, "{what}: column");
        let shown = hit.to_string();
        assert!(
            shown.starts_with(&format!("bad.yaml:{line}:")),
            "{what}: `{shown}`"
        );
    }
}
