//! Bad listeners: addresses, names, pool references, modes the protocol
//! or the file's planes cannot serve, durations and bounded limits.

use super::{Case, replace};

/// The listener cases.
#[expect(clippy::too_many_lines, reason = "a data table, one row per case")]
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "bad listener address",
            replace("198.18.0.10:80", "198.18.0.10"),
            4,
            "listeners[0].address",
            "`198.18.0.10`",
        ),
        (
            "unknown pool",
            replace("    pool: web", "    pool: api"),
            7,
            "listeners[0].pool",
            "`api` is not a defined pool",
        ),
        (
            "unknown listener key",
            replace("    mode: proxy", "    mdoe: proxy"),
            6,
            "listeners[0]",
            "unknown field `mdoe`",
        ),
        (
            "unknown mode",
            replace("mode: proxy", "mode: fast"),
            6,
            "listeners[0].mode",
            "unknown variant `fast`",
        ),
        (
            "unknown protocol",
            replace("protocol: tcp", "protocol: sctp"),
            5,
            "listeners[0].protocol",
            "unknown variant `sctp`",
        ),
        (
            "duplicate listener name",
            replace(
                "    pool: web\npools:",
                "    pool: web\n  - name: web\n    address: 198.18.0.11:80\n    protocol: tcp\n    pool: web\npools:",
            ),
            8,
            "listeners[1].name",
            "`web` is used by another listener",
        ),
        (
            "duplicate listener address",
            replace(
                "    pool: web\npools:",
                "    pool: web\n  - name: web2\n    address: 198.18.0.10:80\n    protocol: tcp\n    pool: web\npools:",
            ),
            9,
            "listeners[1].address",
            "is used by another listener",
        ),
        (
            "udp in http mode",
            replace(
                "protocol: tcp\n    mode: proxy",
                "protocol: udp\n    mode: http",
            ),
            6,
            "listeners[0].mode",
            "`http` needs a tcp listener",
        ),
        (
            "unknown proxy engine",
            replace(
                "    mode: proxy",
                "    mode: proxy\n    proxy_engine: io_uring",
            ),
            7,
            "listeners[0].proxy_engine",
            "unknown variant `io_uring`",
        ),
        (
            "proxy engine on a udp listener",
            replace(
                "protocol: tcp\n    mode: proxy",
                "protocol: udp\n    mode: proxy\n    proxy_engine: sockmap",
            ),
            7,
            "listeners[0].proxy_engine",
            "applies to tcp listeners in `proxy` or `auto` mode",
        ),
        (
            "xdp mode without xdp section",
            replace("mode: proxy", "mode: xdp"),
            6,
            "listeners[0].mode",
            "needs the top-level `xdp` section",
        ),
        (
            "zero connect timeout",
            replace(
                "    mode: proxy",
                "    mode: proxy\n    connect_timeout: 0s",
            ),
            7,
            "listeners[0].connect_timeout",
            "greater than zero",
        ),
        (
            "idle timeout without unit",
            replace("    mode: proxy", "    mode: proxy\n    idle_timeout: 30"),
            7,
            "listeners[0].idle_timeout",
            "unit",
        ),
        (
            "idle timeout garbage",
            replace("    mode: proxy", "    mode: proxy\n    idle_timeout: soon"),
            7,
            "listeners[0].idle_timeout",
            "`soon`",
        ),
        (
            "max connections zero",
            replace("    mode: proxy", "    mode: proxy\n    max_connections: 0"),
            7,
            "listeners[0].max_connections",
            "`0` is out of range",
        ),
        (
            "max connections over limit",
            replace(
                "    mode: proxy",
                "    mode: proxy\n    max_connections: 5000000",
            ),
            7,
            "listeners[0].max_connections",
            "1..=1000000",
        ),
        (
            "connect attempts over limit",
            replace(
                "    mode: proxy",
                "    mode: proxy\n    connect_attempts: 50",
            ),
            7,
            "listeners[0].connect_attempts",
            "1..=16",
        ),
        (
            "max sessions zero",
            replace("    mode: proxy", "    mode: proxy\n    max_sessions: 0"),
            7,
            "listeners[0].max_sessions",
            "out of range",
        ),
        (
            "sequence where a mode belongs",
            replace("mode: proxy", "mode: [proxy]"),
            6,
            "listeners[0].mode",
            "invalid type",
        ),
        (
            "empty listener name",
            replace("  - name: web\n    address", "  - name: \"\"\n    address"),
            3,
            "listeners[0].name",
            "must not be empty",
        ),
    ]
}
