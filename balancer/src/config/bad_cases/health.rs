//! Bad health checks: timings, counts, HTTP values, and keys written on
//! a kind of check that does not read them.

use super::{Case, replace};

/// The health-check cases.
#[expect(clippy::too_many_lines, reason = "a data table, one row per case")]
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "health zero interval",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: tcp\n      interval: 0ms",
            ),
            13,
            "pools[0].health.interval",
            "greater than zero",
        ),
        (
            "health timeout above interval",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: http\n      interval: 1s\n      timeout: 2s",
            ),
            14,
            "pools[0].health.timeout",
            "longer than the interval",
        ),
        (
            "health path without slash",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: http\n      path: healthz",
            ),
            13,
            "pools[0].health.path",
            "must start with `/`",
        ),
        (
            "health fall zero",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: tcp\n      fall: 0",
            ),
            13,
            "pools[0].health.fall",
            "out of range",
        ),
        (
            "health unknown kind",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: icmp",
            ),
            12,
            "pools[0].health.kind",
            "unknown variant `icmp`",
        ),
        (
            "tcp check with path",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: tcp\n      path: /x",
            ),
            13,
            "pools[0].health.path",
            "only `http` checks",
        ),
        (
            "udp payload on an http check",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: http\n      send: ping",
            ),
            13,
            "pools[0].health.send",
            "only `udp` checks take `send`",
        ),
        (
            "bad status range",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: http\n      expect_status: 399-200",
            ),
            13,
            "pools[0].health.expect_status",
            "not a status range",
        ),
        (
            "lower-case method",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: http\n      method: get",
            ),
            13,
            "pools[0].health.method",
            "not an HTTP method",
        ),
        (
            "jitter as long as the interval",
            replace(
                "    algorithm: maglev",
                "    algorithm: maglev\n    health:\n      kind: tcp\n      interval: 1s\n      jitter: 1s",
            ),
            14,
            "pools[0].health.jitter",
            "shorter than the interval",
        ),
    ]
}
