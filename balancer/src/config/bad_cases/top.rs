//! Bad top-level keys and YAML that does not parse: version, admin,
//! shutdown grace, demo backends, a file with no listeners, and syntax
//! errors serde reports before validation starts.

use super::{Case, append, replace};

/// The top-level cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "unknown top-level key",
            append("listners: []\n"),
            15,
            "",
            "unknown field `listners`",
        ),
        (
            "version 2",
            replace("version: 1", "version: 2"),
            1,
            "version",
            "`2` is not a supported version",
        ),
        (
            "missing version",
            replace("version: 1\n", ""),
            1,
            "",
            "missing field `version`",
        ),
        (
            "bad admin address",
            append("admin:\n  listen: localhost\n"),
            16,
            "admin.listen",
            "`localhost` is not an IP:port",
        ),
        (
            "public admin address without a token",
            append("admin:\n  listen: 0.0.0.0:9900\n"),
            16,
            "admin.listen",
            "reachable from other hosts and there is no `admin.token_file`",
        ),
        (
            "admin insecure not a boolean",
            append("admin:\n  listen: 0.0.0.0:9900\n  insecure: maybe\n"),
            17,
            "admin.insecure",
            "expected a boolean",
        ),
        (
            "bad shutdown grace",
            append("shutdown_grace: forever\n"),
            15,
            "shutdown_grace",
            "`forever`",
        ),
        (
            "bad demo backend",
            append("demo_backends: [127.0.0.1]\n"),
            15,
            "demo_backends[0]",
            "`127.0.0.1`",
        ),
        (
            "no listeners",
            replace(
                "listeners:\n  - name: web\n    address: 198.18.0.10:80\n    protocol: tcp\n    mode: proxy\n    pool: web\n",
                "listeners: []\n",
            ),
            2,
            "listeners",
            "no listeners",
        ),
        (
            "yaml syntax error",
            replace("    mode: proxy", "    mode: proxy: fast"),
            6,
            "",
            "mapping values are not allowed",
        ),
        (
            "tab indentation",
            replace("    mode: proxy", "\tmode: proxy"),
            6,
            "",
            "tab",
        ),
    ]
}
