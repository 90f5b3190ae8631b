//! Bad SNI routes: a `proxy` listener's routes match `sni` and name a
//! pool, nothing else; an `http` listener's routes never match `sni`.

use super::{Case, replace};

/// The base document's proxy listener with `routes` (from line 9 on).
fn sni_routes(routes: &str) -> String {
    replace(
        "    pool: web\n",
        &format!("    pool: web\n    routes:\n{routes}"),
    )
}

/// The SNI routing cases.
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "a proxy listener's route without sni",
            sni_routes("      - { pool: web }\n"),
            9,
            "listeners[0].routes[0].match.sni",
            "missing",
        ),
        (
            "an sni route on an http listener",
            replace(
                "    mode: proxy\n    pool: web\n",
                "    mode: http\n    pool: web\n    routes:\n      - { match: { sni: a.example.test }, pool: web }\n",
            ),
            9,
            "listeners[0].routes[0].match.sni",
            "`sni` routes TLS without terminating it",
        ),
        (
            "a path matcher on a proxy listener's route",
            sni_routes("      - { match: { sni: a.example.test, path: /x }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.path",
            "needs `mode: http`",
        ),
        (
            "a split on a proxy listener's route",
            sni_routes("      - match: { sni: a.example.test }\n        split: { web: 1 }\n"),
            10,
            "listeners[0].routes[0].split",
            "needs `mode: http`",
        ),
        (
            "a bad server name",
            sni_routes("      - { match: { sni: \"a*.example.test\" }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.sni",
            "is not a host",
        ),
        (
            "an sni route to an undefined pool",
            sni_routes("      - { match: { sni: a.example.test }, pool: nope }\n"),
            9,
            "listeners[0].routes[0].pool",
            "`nope` is not a defined pool",
        ),
        (
            "sni routes on a udp listener",
            replace(
                "    protocol: tcp\n    mode: proxy\n    pool: web\n",
                "    protocol: udp\n    mode: proxy\n    pool: web\n    routes:\n      - { match: { sni: a.example.test }, pool: web }\n",
            ),
            8,
            "listeners[0].routes",
            "need a tcp listener",
        ),
    ]
}
