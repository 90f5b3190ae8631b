//! Bad `pools[].tls` blocks and what may use such a pool (the files that
//! must exist and load are in the TLS end-to-end tests).

use super::{Case, replace};

/// The base document's pool with `block` after its algorithm (line 11).
fn pool(block: &str) -> String {
    replace(
        "    algorithm: maglev\n",
        &format!("    algorithm: maglev\n{block}"),
    )
}

/// The base document with its listener in `http` mode and `block` in its
/// pool (line 11).
fn http_pool(block: &str) -> String {
    pool(block).replace("    mode: proxy\n", "    mode: http\n")
}

/// The pool TLS cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "backend TLS without a CA",
            http_pool("    tls: { sni: api.internal.test }\n"),
            11,
            "pools[0].tls.ca",
            "`verify: false` turns verification off instead",
        ),
        (
            "a backend CA that does not exist",
            http_pool("    tls: { ca: /nonexistent/ca.pem }\n"),
            11,
            "pools[0].tls.ca",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "a wildcard as the name sent to backends",
            http_pool("    tls: { verify: false, sni: \"*.internal.test\" }\n"),
            11,
            "pools[0].tls.sni",
            "is not a DNS name",
        ),
        (
            "a client certificate without its key",
            http_pool("    tls: { verify: false, cert: /nonexistent/c.pem }\n"),
            11,
            "pools[0].tls.key",
            "missing",
        ),
        (
            "h2 without tls",
            http_pool("    http: h2\n"),
            11,
            "pools[0].http",
            "needs the pool's `tls`",
        ),
        (
            "h2c with tls",
            http_pool("    http: h2c\n    tls: { verify: false }\n"),
            11,
            "pools[0].http",
            "to a pool with `tls` use `h2`",
        ),
        (
            "a TLS pool behind a proxy listener",
            pool("    tls: { verify: false }\n"),
            7,
            "listeners[0].pool",
            "passes bytes through unread",
        ),
    ]
}
