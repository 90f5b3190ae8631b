//! The route-table target: arbitrary requests against a compiled table of
//! every kind of matcher, compared with a slow reference that tries each
//! route in file order with nothing indexed.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header::HOST};

use crate::{
    config::{
        self,
        http::{HeaderMatch, PathMatch, Route},
    },
    http::route::{Request, RouteTable, host_of},
};

/// Routes with exact and wildcard hosts at several depths, every path
/// matcher, methods and headers, some overlapping so order matters.
const ROUTES: &str = r#"version: 1
listeners:
  - name: edge
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: p
    routes:
      - { name: exact, match: { host: a.example.test, path: /x }, pool: p }
      - { name: deep, match: { host: "*.b.example.test", path_prefix: /api }, pool: p }
      - { name: wild, match: { host: "*.example.test", methods: [GET, HEAD] }, pool: p }
      - { name: top, match: { host: "*.test", path_regex: "^/v[0-9]+/" }, pool: p }
      - { name: re, match: { path_regex: "(?i)\\.(png|jpe?g)$" }, pool: p }
      - { name: hdr, match: { headers: { x-canary: "1", x-user: "*" } }, pool: p }
      - { name: root, match: { path_prefix: / , methods: [POST] }, pool: p }
      - { name: slash, match: { path_prefix: /a/b }, pool: p }
pools:
  - name: p
    backends:
      - address: 198.18.1.11:80
"#;

fn table() -> &'static (Vec<Route>, RouteTable) {
    static TABLE: OnceLock<(Vec<Route>, RouteTable)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let c = config::parse(ROUTES, "fuzz-routes.yaml").expect("the fuzz routes are valid");
        let routes = c.listeners[0]
            .http
            .as_ref()
            .expect("an http listener")
            .routes
            .clone();
        let table = RouteTable::new(&routes);
        (routes, table)
    })
}

/// Lines: method, `Host` header, path, then `name:value` headers.
pub fn route_table(data: &[u8]) {
    let mut lines = data.split(|b| *b == b'\n');
    let Ok(method) = Method::from_bytes(lines.next().unwrap_or_default()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(lines.next().unwrap_or_default()) {
        headers.insert(HOST, v);
    }
    let Ok(path) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    for line in lines {
        let mut kv = line.splitn(2, |b| *b == b':');
        if let (Some(k), Some(v)) = (kv.next(), kv.next())
            && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v))
        {
            headers.append(k, v);
        }
    }
    let host = host_of(&Uri::from_static("/"), &headers);
    let req = Request {
        method: &method,
        host: host.as_deref(),
        path,
        headers: &headers,
    };
    let (routes, table) = table();
    let slow = routes.iter().position(|r| reference(r, &req));
    assert_eq!(
        table.find(&req),
        slow,
        "{method} host {host:?} path {path:?} headers {headers:?}"
    );
}

/// Whether `r` takes `req`, from the matcher's words alone.
fn reference(r: &Route, req: &Request<'_>) -> bool {
    let m = &r.matcher;
    let host_ok = match (&m.host, req.host) {
        (None, _) => true,
        (Some(h), Some(host)) => h.matches(host),
        (Some(_), None) => false,
    };
    let path_ok = match &m.path {
        None => true,
        Some(PathMatch::Exact(p)) => req.path == p,
        Some(PathMatch::Prefix(p)) => {
            p == "/" || req.path == p || req.path.starts_with(&format!("{p}/"))
        }
        Some(PathMatch::Regex(re)) => re.is_match(req.path),
    };
    host_ok
        && path_ok
        && (m.methods.is_empty() || m.methods.contains(req.method))
        && m.headers.iter().all(|(name, want)| {
            let mut values = req.headers.get_all(name).iter();
            match want {
                HeaderMatch::Present => values.next().is_some(),
                HeaderMatch::Value(v) => values.any(|h| h == v),
            }
        })
}
