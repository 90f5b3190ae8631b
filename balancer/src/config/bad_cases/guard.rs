//! Bad guard settings: CIDRs, overlapping list entries, rate and burst
//! pairs, and SYN cookies where a kernel socket does not take the
//! handshake.

use super::{Case, append, replace};

/// The guard cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "bad deny cidr",
            append("guard:\n  deny: [198.18.0.1/15]\n"),
            16,
            "guard.deny[0]",
            "host bits set",
        ),
        (
            "bad allow cidr",
            append("guard:\n  allow: [fd00::/200]\n"),
            16,
            "guard.allow[0]",
            "prefix length",
        ),
        (
            "burst below rate",
            append("guard:\n  per_source:\n    syn_rate: 200\n    syn_burst: 100\n"),
            18,
            "guard.per_source.syn_burst",
            "below syn_rate",
        ),
        (
            "overlapping deny cidrs",
            append("guard:\n  deny: [198.18.0.0/16, 198.18.4.0/24]\n"),
            16,
            "guard.deny[1]",
            "overlaps `198.18.0.0/16` (guard.deny[0])",
        ),
        (
            "allow inside deny",
            append("guard:\n  deny: [\"fd00::/8\"]\n  allow: [\"fd00:1::/32\"]\n"),
            17,
            "guard.allow[0]",
            "never admit",
        ),
        (
            "a listener's allow inside a global deny",
            replace(
                "    pool: web\n",
                "    pool: web\n    guard: { allow: [198.18.0.0/24] }\n",
            ) + "guard:\n  deny: [198.18.0.0/16]\n",
            8,
            "listeners[0].guard.allow[0]",
            "never admit",
        ),
        (
            "listener ceiling burst below rate",
            replace(
                "    pool: web\n",
                "    pool: web\n    guard: { syn_rate: 500, syn_burst: 10 }\n",
            ),
            8,
            "listeners[0].guard.syn_burst",
            "below syn_rate `500`",
        ),
        (
            "SYN cookies beside a ceiling",
            replace(
                "    pool: web\n",
                "    pool: web\n    guard: { syn_rate: 500, syn_cookies_above: 1000 }\n",
            ),
            8,
            "listeners[0].guard.syn_cookies_above",
            "cannot stand beside `syn_rate`",
        ),
        (
            "SYN cookies on an xdp listener",
            replace(
                "    mode: proxy\n    pool: web\n",
                "    mode: xdp\n    pool: web\n    guard: { syn_cookies_above: 1000 }\n",
            ),
            8,
            "listeners[0].guard.syn_cookies_above",
            "answer with their own SYN cookies",
        ),
        (
            "packet burst without a rate",
            append("guard:\n  per_source:\n    packet_burst: 100\n"),
            17,
            "guard.per_source.packet_burst",
            "needs `packet_rate`",
        ),
        (
            "zero syn rate",
            append("guard:\n  per_source:\n    syn_rate: 0\n    syn_burst: 100\n"),
            17,
            "guard.per_source.syn_rate",
            "`0` is out of range",
        ),
    ]
}
