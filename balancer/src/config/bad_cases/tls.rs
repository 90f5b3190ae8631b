//! Bad `tls` blocks: where they may appear, and certificate files that
//! cannot be served (those that need real files, a key of another
//! certificate or an expired one, are in `validate::tls`'s tests), and bad
//! PROXY protocol settings.

use super::{Case, replace};

/// The base document's listener in `http` mode with a `tls` block (its
/// lines from line 9 on).
fn tls(block: &str) -> String {
    replace(
        "    mode: proxy\n    pool: web\n",
        &format!("    mode: http\n    pool: web\n    tls:\n{block}"),
    )
}

/// The TLS cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "tls on a proxy listener",
            replace(
                "    pool: web\n",
                "    pool: web\n    tls:\n      certificates: []\n",
            ),
            8,
            "listeners[0].tls",
            "`tls` needs `mode: http`",
        ),
        (
            "no certificate",
            tls("      certificates: []\n"),
            9,
            "listeners[0].tls.certificates",
            "needs at least one",
        ),
        (
            "a certificate file that does not exist",
            tls(
                "      certificates:\n        - { cert: /nonexistent/a.pem, key: /nonexistent/a.key }\n",
            ),
            10,
            "listeners[0].tls.certificates[0].cert",
            "cannot read /nonexistent/a.pem",
        ),
        (
            "a certificate file that is not PEM",
            tls(
                "      certificates:\n        - { cert: /proc/self/status, key: /proc/self/status }\n",
            ),
            10,
            "listeners[0].tls.certificates[0].cert",
            "holds no PEM certificate",
        ),
        (
            "client_auth without client_ca",
            tls("      certificates: []\n      client_auth: optional\n"),
            10,
            "listeners[0].tls.client_auth",
            "needs `client_ca`",
        ),
        (
            "a client CA that does not exist",
            tls("      certificates: []\n      client_ca: /nonexistent/ca.pem\n"),
            10,
            "listeners[0].tls.client_ca",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "a bad subject header name",
            tls(
                "      certificates: []\n      client_ca: /nonexistent/ca.pem\n      client_subject_header: \"x client\"\n",
            ),
            11,
            "listeners[0].tls.client_subject_header",
            "not a valid header name",
        ),
        (
            "PROXY headers on a udp listener",
            replace(
                "    protocol: tcp\n    mode: proxy\n",
                "    protocol: udp\n    mode: proxy\n    proxy_protocol: { accept_from: [198.18.0.0/24] }\n",
            ),
            7,
            "listeners[0].proxy_protocol",
            "`auto` and `http` TCP listeners only",
        ),
        (
            "overlapping accept_from",
            replace(
                "    pool: web\n",
                "    pool: web\n    proxy_protocol:\n      accept_from: [198.18.0.0/16, 198.18.5.0/24]\n",
            ),
            9,
            "listeners[0].proxy_protocol.accept_from[1]",
            "overlaps `198.18.0.0/16`",
        ),
        (
            "a bad handshake timeout",
            tls("      certificates: []\n      handshake_timeout: soon\n"),
            10,
            "listeners[0].tls.handshake_timeout",
            "",
        ),
    ]
}
