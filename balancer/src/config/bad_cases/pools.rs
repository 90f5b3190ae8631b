//! Bad pools and backends: names, algorithms, Maglev table sizes,
//! backend addresses and weights.

use super::{Case, append, replace};

/// The pool and backend cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "bad backend address",
            replace("198.18.1.12:80", "198.18.1.300:80"),
            14,
            "pools[0].backends[1].address",
            "`198.18.1.300:80` is not an IP:port",
        ),
        (
            "ipv6 without brackets",
            replace("198.18.1.12:80", "fd00::1:80"),
            14,
            "pools[0].backends[1].address",
            "IP:port",
        ),
        (
            "unknown algorithm",
            replace("algorithm: maglev", "algorithm: random"),
            10,
            "pools[0].algorithm",
            "unknown variant `random`",
        ),
        (
            "negative weight",
            replace("weight: 100", "weight: -1"),
            13,
            "pools[0].backends[0].weight",
            "`-1` is out of range",
        ),
        (
            "weight too high",
            replace("weight: 100", "weight: 10001"),
            13,
            "pools[0].backends[0].weight",
            "0..=10000",
        ),
        (
            "weight not a number",
            replace("weight: 100", "weight: heavy"),
            13,
            "pools[0].backends[0].weight",
            "invalid type",
        ),
        (
            "empty pool",
            replace(
                "    backends:\n      - address: 198.18.1.11:80\n        weight: 100\n      - address: 198.18.1.12:80\n",
                "    backends: []\n",
            ),
            11,
            "pools[0].backends",
            "no backends",
        ),
        (
            "duplicate backend",
            replace("198.18.1.12:80", "198.18.1.11:80"),
            14,
            "pools[0].backends[1].address",
            "appears twice",
        ),
        (
            "duplicate pool name",
            append("  - name: web\n    backends:\n      - address: 198.18.1.13:80\n"),
            15,
            "pools[1].name",
            "`web` is used by another pool",
        ),
        (
            "maglev table not prime",
            replace(
                "algorithm: maglev",
                "algorithm: maglev\n    maglev_table_size: 65536",
            ),
            11,
            "pools[0].maglev_table_size",
            "must be a prime",
        ),
        (
            "maglev table too small",
            replace(
                "algorithm: maglev",
                "algorithm: maglev\n    maglev_table_size: 1",
            ),
            11,
            "pools[0].maglev_table_size",
            "prime",
        ),
        (
            "missing backend address",
            replace("      - address: 198.18.1.12:80\n", "      - weight: 5\n"),
            14,
            "pools[0].backends[1]",
            "missing field `address`",
        ),
    ]
}
