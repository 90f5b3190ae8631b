//! What changes in a request on its way to a backend and in the answer on
//! its way back (pingora's `upstream_request_filter` and
//! `response_filter`): hop-by-hop headers go (RFC 9110, 7.6.1), the
//! `X-Forwarded-*` headers say who asked and how, the route's prefix is
//! stripped, and the listener's and route's rewrites apply. Requests are
//! rebuilt from parsed fields; no raw byte of the client's reaches a
//! backend.

use std::{fmt::Write as _, net::IpAddr};

use bytes::Bytes;

use http::{
    HeaderMap, HeaderName, HeaderValue, Uri,
    header::{self, HOST},
    uri::PathAndQuery,
};

use crate::config::http::HeaderRewrite;

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers and those `Connection` names. `TE:
/// trailers` stays when `te_trailers` (gRPC over HTTP/2 needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, te_trailers: bool) {
    // One pass over the names present: most messages carry none of these,
    // and removing an absent name still costs a hash and a probe each.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let te_is_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    if te_trailers && te_is_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the client to `X-Forwarded-For` (after what earlier proxies
/// wrote) and sets `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &'static str,
    host: Option<&str>,
) {
    let mut value = String::new();
    for earlier in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        value.push_str(earlier);
        value.push_str(", ");
    }
    let _ = write!(value, "{}", client.to_canonical());
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

/// Applies `rewrite`: removals, then sets, then additions.
pub fn rewrite(headers: &mut HeaderMap, rewrite: &HeaderRewrite) {
    for name in &rewrite.remove {
        headers.remove(name);
    }
    for (name, value) in &rewrite.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &rewrite.add {
        headers.append(name.clone(), value.clone());
    }
}

/// `path_and_query` with `prefix` taken off its path (segment-aware, as
/// routes match it); the path never becomes empty.
#[must_use]
pub fn strip_prefix(path_and_query: &str, prefix: &str) -> String {
    let (path, query) = match path_and_query.find('?') {
        Some(q) => path_and_query.split_at(q),
        None => (path_and_query, ""),
    };
    let rest = match path.strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return path_and_query.to_owned(),
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    format!("{rest}{query}")
}

/// The URI to send upstream: origin-form for HTTP/1 backends, and for
/// HTTP/2 ones the scheme and authority that `:scheme` and `:authority`
/// need.
pub fn upstream_uri(
    path_and_query: &str,
    authority: Option<&str>,
    h2: bool,
) -> Result<Uri, http::Error> {
    let pq: PathAndQuery = path_and_query.parse()?;
    let mut b = Uri::builder().path_and_query(pq);
    if h2 {
        b = b.scheme("http").authority(authority.unwrap_or("localhost"));
    }
    b.build()
}

/// Sets `Host` to `host` (HTTP/2 clients send `:authority` instead, and an
/// absolute-form request's authority replaces its `Host`).
pub fn set_host(headers: &mut HeaderMap, host: &str) {
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(HOST, v);
    }
}

#[cfg(test)]
mod tests;
