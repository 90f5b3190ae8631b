//! Bad HTTP settings: routes (matchers, targets, rewrites, limits) and the
//! `http` blocks of listeners and pools.

use super::{Case, replace};

/// The base document's listener in `http` mode with `routes` (YAML lines
/// from line 8 on, indented for the listener).
fn routes(routes: &str) -> String {
    replace(
        "    mode: proxy\n    pool: web\n",
        &format!("    mode: http\n    pool: web\n    routes:\n{routes}"),
    )
}

/// The base document's listener in `http` mode with an `http` block.
fn http_block(block: &str) -> String {
    replace(
        "    mode: proxy\n    pool: web\n",
        &format!("    mode: http\n    pool: web\n    http:\n{block}"),
    )
}

/// The HTTP cases.
#[expect(clippy::too_many_lines, reason = "a data table, one row per case")]
pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "bad regex",
            routes("      - { match: { path_regex: \"^/u/([0-9]+$\" }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.path_regex",
            "is not a valid regex",
        ),
        (
            "unknown pool in a route",
            routes("      - { match: { path_prefix: /api }, pool: api }\n"),
            9,
            "listeners[0].routes[0].pool",
            "`api` is not a defined pool",
        ),
        (
            "unknown pool in a split",
            routes("      - split: { api: 5, web: 95 }\n"),
            9,
            "listeners[0].routes[0].split.api",
            "`api` is not a defined pool",
        ),
        (
            "split weights all zero",
            routes("      - split: { web: 0 }\n"),
            9,
            "listeners[0].routes[0].split",
            "every weight is 0",
        ),
        (
            "split weight out of range",
            routes("      - split: { web: 10001 }\n"),
            9,
            "listeners[0].routes[0].split.web",
            "out of range",
        ),
        (
            "wildcard inside a host",
            routes("      - { match: { host: \"a.*.test\" }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.host",
            "is not a host",
        ),
        (
            "host with a port",
            routes("      - { match: { host: \"a.test:80\" }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.host",
            "no port",
        ),
        (
            "invalid header name in a matcher",
            routes("      - { match: { headers: { \"x@y\": \"1\" } }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.headers.x@y",
            "is not a valid header name",
        ),
        (
            "invalid header value in a rewrite",
            routes("      - { pool: web, request_headers: { set: { x-a: \"\\u0001\" } } }\n"),
            9,
            "listeners[0].routes[0].request_headers.set.x-a",
            "is not a valid header value",
        ),
        (
            "a rewrite of a header the proxy manages",
            routes("      - { pool: web, response_headers: { remove: [Transfer-Encoding] } }\n"),
            9,
            "listeners[0].routes[0].response_headers.remove[0]",
            "managed by the proxy",
        ),
        (
            "lowercase method",
            routes("      - { match: { methods: [get] }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.methods[0]",
            "uppercase",
        ),
        (
            "two path matchers",
            routes("      - { match: { path: /a, path_prefix: /a }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.path_prefix",
            "give one of `path`, `path_prefix` and `path_regex`",
        ),
        (
            "path without a leading slash",
            routes("      - { match: { path_prefix: api }, pool: web }\n"),
            9,
            "listeners[0].routes[0].match.path_prefix",
            "must start with `/`",
        ),
        (
            "two targets",
            routes("      - { pool: web, answer: { status: 403 } }\n"),
            9,
            "listeners[0].routes[0]",
            "give exactly one of `pool`, `split`, `redirect` and `answer`",
        ),
        (
            "no target",
            routes("      - { match: { path: /a } }\n"),
            9,
            "listeners[0].routes[0]",
            "give exactly one of",
        ),
        (
            "redirect with a status that is no redirect",
            routes("      - { redirect: { scheme: https, status: 200 } }\n"),
            9,
            "listeners[0].routes[0].redirect.status",
            "is not a redirect status",
        ),
        (
            "redirect to an unknown scheme",
            routes("      - { redirect: { scheme: ftp } }\n"),
            9,
            "listeners[0].routes[0].redirect.scheme",
            "is not `http` or `https`",
        ),
        (
            "answer status out of range",
            routes("      - { answer: { status: 700 } }\n"),
            9,
            "listeners[0].routes[0].answer.status",
            "is not a status from 200 to 599",
        ),
        (
            "rate limit by an unknown key",
            routes("      - { pool: web, rate_limit: { key: cookie, rate: 10 } }\n"),
            9,
            "listeners[0].routes[0].rate_limit.key",
            "is not `client_ip` or `header:<name>`",
        ),
        (
            "rate limit burst below its rate",
            routes("      - { pool: web, rate_limit: { key: client_ip, rate: 10, burst: 5 } }\n"),
            9,
            "listeners[0].routes[0].rate_limit.burst",
            "is below the rate",
        ),
        (
            "strip_prefix without a leading slash",
            routes("      - { pool: web, strip_prefix: v1 }\n"),
            9,
            "listeners[0].routes[0].strip_prefix",
            "must start with `/`",
        ),
        (
            "unknown route key",
            routes("      - { pool: web, stripprefix: /v1 }\n"),
            9,
            "listeners[0].routes[0]",
            "unknown field `stripprefix`",
        ),
        (
            "an http block on a proxy listener",
            replace(
                "    pool: web\n",
                "    pool: web\n    http: { max_headers: 10 }\n",
            ),
            8,
            "listeners[0].http",
            "`http` needs `mode: http`",
        ),
        (
            "head size out of range",
            http_block("      max_header_bytes: 0\n"),
            9,
            "listeners[0].http.max_header_bytes",
            "out of range",
        ),
        (
            "bad header timeout",
            http_block("      header_timeout: soon\n"),
            9,
            "listeners[0].http.header_timeout",
            "`soon`",
        ),
        (
            "a proxy listener without a pool",
            replace("    mode: proxy\n    pool: web\n", "    mode: proxy\n"),
            3,
            "listeners[0].pool",
            "needs a `pool` (only `http` listeners may leave it out)",
        ),
        (
            "unknown upstream protocol",
            replace(
                "    algorithm: maglev\n",
                "    algorithm: maglev\n    http: h3\n",
            ),
            11,
            "pools[0].http",
            "unknown variant `h3`",
        ),
        (
            "too many idle upstream connections",
            replace(
                "    algorithm: maglev\n",
                "    algorithm: maglev\n    keepalive: { max_idle: 1000000 }\n",
            ),
            11,
            "pools[0].keepalive.max_idle",
            "out of range",
        ),
    ]
}
