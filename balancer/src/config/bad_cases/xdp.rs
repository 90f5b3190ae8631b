//! Bad `xdp` sections, and listeners in `xdp` mode the kernel plane
//! cannot serve.

use super::{Case, append, replace};

/// The XDP cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "xdp mode over a non-maglev pool",
            replace("mode: proxy", "mode: xdp")
                .replace("algorithm: maglev", "algorithm: round_robin")
                + "xdp:\n  interface: eth0\n",
            6,
            "listeners[0].mode",
            "balances with the pool's Maglev ring",
        ),
        (
            "xdp mode with a port-translating backend",
            replace("mode: proxy", "mode: xdp").replace("198.18.1.12:80", "198.18.1.12:8080")
                + "xdp:\n  interface: eth0\n",
            6,
            "listeners[0].mode",
            "backends must serve the listener's port 80; `198.18.1.12:8080`",
        ),
        (
            "flow table zero",
            append("xdp:\n  interface: eth0\n  flow_table_size: 0\n"),
            17,
            "xdp.flow_table_size",
            "`0` is out of range",
        ),
        (
            "relative pin dir",
            append("xdp:\n  interface: eth0\n  pin_dir: bpf/balancer\n"),
            17,
            "xdp.pin_dir",
            "must be an absolute path",
        ),
        (
            "bad interface name",
            append("xdp:\n  interface: a/b\n"),
            16,
            "xdp.interface",
            "not a valid interface name",
        ),
        (
            "unknown forwarding",
            append("xdp:\n  interface: eth0\n  forwarding: nat\n"),
            17,
            "xdp.forwarding",
            "unknown variant `nat`",
        ),
    ]
}
