//! The route table against hand-built requests: every matcher, first match
//! wins across the host index, wildcards, segment-aware prefixes, regexes
//! through the set, and the host taken from a request.

use http::{HeaderMap, HeaderValue, Method, Uri};

use super::{Request, RouteTable, host_of, prefix_matches};
use crate::config;

/// The table of the one listener of a config whose routes are `routes`
/// (YAML, indented for the listener's `routes:` key).
fn table(routes: &str) -> RouteTable {
    let yaml = format!(
        "version: 1
listeners:
  - name: web
    address: 127.0.0.1:8080
    protocol: tcp
    mode: http
    routes:
{routes}
pools:
  - {{ name: a, backends: [{{ address: 127.0.0.1:9001 }}] }}
  - {{ name: b, backends: [{{ address: 127.0.0.1:9002 }}] }}
  - {{ name: c, backends: [{{ address: 127.0.0.1:9003 }}] }}
"
    );
    let config = config::parse(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    RouteTable::new(&config.listeners[0].http.as_ref().expect("http").routes)
}

/// The name of the route `method host path` (plus `headers`) reaches.
fn find(
    t: &RouteTable,
    method: &str,
    host: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    t.find(&Request {
        method: &method,
        host,
        path,
        headers: &map,
    })
    .map(|i| t.routes()[i].name.clone())
}

#[test]
fn exact_hosts_and_wildcards_match_by_label() {
    let t = table(
        "      - { name: exact, match: { host: API.example.test }, pool: a }
      - { name: wild, match: { host: \"*.example.test\" }, pool: b }
      - { name: deeper, match: { host: \"*.b.example.test\" }, pool: c }",
    );
    let get = |h: &str| find(&t, "GET", Some(h), "/", &[]);
    assert_eq!(
        get("api.example.test").as_deref(),
        Some("exact"),
        "case folded at load"
    );
    assert_eq!(get("x.example.test").as_deref(), Some("wild"));
    // The earlier wildcard wins over the longer one: first match in file order.
    assert_eq!(get("a.b.example.test").as_deref(), Some("wild"));
    assert_eq!(
        get("example.test"),
        None,
        "a wildcard needs a label before it"
    );
    assert_eq!(
        get("xexample.test"),
        None,
        "a wildcard matches whole labels"
    );
    assert_eq!(get("api.example.test.evil"), None);
    // An empty first label is no label (found by the route_table fuzz
    // target: `Host: .example.test` used to match the wildcard).
    assert_eq!(get(".example.test"), None);
    assert_eq!(get("..example.test").as_deref(), Some("wild"));
}

#[test]
fn the_first_route_in_file_order_wins_across_the_indexes() {
    let t = table(
        "      - { name: any-api, match: { path_prefix: /api }, pool: a }
      - { name: host, match: { host: shop.test }, pool: b }
      - { name: wild, match: { host: \"*.test\" }, pool: c }
      - { name: fallback, pool: a }",
    );
    assert_eq!(
        find(&t, "GET", Some("shop.test"), "/api/x", &[]).as_deref(),
        Some("any-api")
    );
    assert_eq!(
        find(&t, "GET", Some("shop.test"), "/cart", &[]).as_deref(),
        Some("host")
    );
    assert_eq!(
        find(&t, "GET", Some("blog.test"), "/", &[]).as_deref(),
        Some("wild")
    );
    assert_eq!(find(&t, "GET", None, "/", &[]).as_deref(), Some("fallback"));
    assert_eq!(
        find(&t, "GET", Some("other.example"), "/", &[]).as_deref(),
        Some("fallback")
    );
}

#[test]
fn path_matchers_exact_prefix_by_segment_and_regex() {
    let t = table(
        "      - { name: exact, match: { path: /login }, pool: a }
      - { name: prefix, match: { path_prefix: /api/ }, pool: b }
      - { name: regex, match: { path_regex: \"^/u/[0-9]+$\" }, pool: c }
      - { name: regex2, match: { path_regex: \"\\\\.png$\" }, pool: a }",
    );
    let get = |p: &str| find(&t, "GET", None, p, &[]);
    assert_eq!(get("/login").as_deref(), Some("exact"));
    assert_eq!(get("/login/").as_deref(), None);
    assert_eq!(
        get("/api").as_deref(),
        Some("prefix"),
        "a trailing slash in the file is ignored"
    );
    assert_eq!(get("/api/v1/x").as_deref(), Some("prefix"));
    assert_eq!(
        get("/apix").as_deref(),
        None,
        "prefixes match whole segments"
    );
    assert_eq!(get("/u/42").as_deref(), Some("regex"));
    assert_eq!(get("/u/42x").as_deref(), None);
    assert_eq!(get("/img/a.png").as_deref(), Some("regex2"));
}

#[test]
fn methods_and_headers_narrow_a_match() {
    let t = table(
        "      - { name: canary, match: { headers: { x-canary: \"1\" } }, pool: a }
      - { name: tagged, match: { headers: { X-Tag: \"*\" } }, pool: b }
      - { name: writes, match: { methods: [POST, PUT] }, pool: c }",
    );
    assert_eq!(
        find(&t, "GET", None, "/", &[("x-canary", "1")]).as_deref(),
        Some("canary")
    );
    assert_eq!(
        find(&t, "GET", None, "/", &[("x-canary", "2")]).as_deref(),
        None
    );
    assert_eq!(
        find(
            &t,
            "GET",
            None,
            "/",
            &[("x-canary", "2"), ("x-canary", "1")]
        )
        .as_deref(),
        Some("canary"),
        "any of several values"
    );
    assert_eq!(
        find(&t, "GET", None, "/", &[("x-tag", "")]).as_deref(),
        Some("tagged")
    );
    assert_eq!(find(&t, "PUT", None, "/", &[]).as_deref(), Some("writes"));
    assert_eq!(find(&t, "GET", None, "/", &[]).as_deref(), None);
}

#[test]
fn all_parts_of_a_matcher_must_match() {
    let t = table(
        "      - name: api-writes
        match: { host: api.test, path_prefix: /v1, methods: [POST], headers: { x-key: \"*\" } }
        pool: a",
    );
    let ok = find(&t, "POST", Some("api.test"), "/v1/items", &[("x-key", "k")]);
    assert_eq!(ok.as_deref(), Some("api-writes"));
    for (m, h, p, hdr) in [
        ("GET", "api.test", "/v1/items", true),
        ("POST", "www.test", "/v1/items", true),
        ("POST", "api.test", "/v2/items", true),
        ("POST", "api.test", "/v1/items", false),
    ] {
        let headers: &[(&str, &str)] = if hdr { &[("x-key", "k")] } else { &[] };
        assert_eq!(find(&t, m, Some(h), p, headers), None, "{m} {h}{p} {hdr}");
    }
}

#[test]
fn segment_aware_prefixes() {
    assert!(prefix_matches("/api", "/api"));
    assert!(prefix_matches("/api", "/api/"));
    assert!(prefix_matches("/api", "/api/v1"));
    assert!(!prefix_matches("/api", "/apix"));
    assert!(!prefix_matches("/api", "/ap"));
    assert!(prefix_matches("/", "/anything"));
}

#[test]
fn the_host_comes_from_the_authority_else_the_host_header_without_port_or_case() {
    let with_host = |uri: &str, host: Option<&str>| {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(http::header::HOST, HeaderValue::from_str(v).expect("host"));
        }
        host_of(&uri.parse::<Uri>().expect("uri"), &h)
    };
    assert_eq!(
        with_host("/x", Some("Example.TEST:8080")).as_deref(),
        Some("example.test")
    );
    assert_eq!(
        with_host("/x", Some("example.test.")).as_deref(),
        Some("example.test")
    );
    assert_eq!(
        with_host("http://other.test/x", Some("example.test")).as_deref(),
        Some("other.test"),
        "absolute-form wins"
    );
    assert_eq!(
        with_host("/x", Some("[fd00::1]:80")).as_deref(),
        Some("[fd00::1]")
    );
    assert_eq!(with_host("/x", None), None);
    assert_eq!(with_host("/x", Some("")), None);
}
