//! Header and path rewriting on the way to a backend.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{add_forwarded, rewrite, strip_hop_by_hop, strip_prefix, upstream_uri};
use crate::config::http::HeaderRewrite;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn names(h: &HeaderMap) -> Vec<String> {
    let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
    n.sort();
    n
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_go() {
    let mut h = headers(&[
        ("connection", "keep-alive, X-Secret"),
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("te", "gzip"),
        ("trailer", "x-sum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-connection", "keep-alive"),
        ("x-kept", "1"),
        ("host", "a.test"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(names(&h), ["host", "x-kept"]);
}

#[test]
fn an_upgrade_gets_its_two_headers_back_and_grpc_keeps_te_trailers() {
    let mut h = headers(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("te", "trailers"),
    ]);
    let mut up = h.clone();
    strip_hop_by_hop(&mut up, false);
    assert!(up.is_empty());
    crate::http::upgrade::restore(&mut up, HeaderValue::from_static("websocket"));
    assert_eq!(up["connection"], "upgrade");
    assert_eq!(up["upgrade"], "websocket");
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["te"], "trailers");
    let mut gzip = headers(&[("te", "gzip, trailers")]);
    strip_hop_by_hop(&mut gzip, true);
    assert!(!gzip.contains_key("te"), "only a bare `trailers` is kept");
}

#[test]
fn x_forwarded_for_is_appended_and_proto_and_host_are_set() {
    let mut h = HeaderMap::new();
    add_forwarded(
        &mut h,
        "198.18.0.5".parse().expect("ip"),
        "http",
        Some("a.test"),
    );
    assert_eq!(h["x-forwarded-for"], "198.18.0.5");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "a.test");

    let mut h = headers(&[
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-for", "198.18.9.9, 198.18.9.10"),
        ("x-forwarded-proto", "https"),
    ]);
    add_forwarded(
        &mut h,
        "::ffff:198.18.0.5".parse().expect("ip"),
        "http",
        None,
    );
    assert_eq!(
        h["x-forwarded-for"], "203.0.113.1, 198.18.9.9, 198.18.9.10, 198.18.0.5",
        "earlier hops kept in order, the mapped client written as IPv4"
    );
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(
        h["x-forwarded-proto"], "http",
        "ours replaces the client's claim"
    );
    assert!(!h.contains_key("x-forwarded-host"));
}

#[test]
fn rewrites_remove_then_set_then_add() {
    let mut h = headers(&[("x-a", "1"), ("x-b", "1"), ("x-c", "1")]);
    let r = HeaderRewrite {
        remove: vec![HeaderName::from_static("x-a")],
        set: vec![(
            HeaderName::from_static("x-b"),
            HeaderValue::from_static("2"),
        )],
        add: vec![(
            HeaderName::from_static("x-c"),
            HeaderValue::from_static("2"),
        )],
    };
    rewrite(&mut h, &r);
    assert!(!h.contains_key("x-a"));
    assert_eq!(h.get_all("x-b").iter().collect::<Vec<_>>(), ["2"]);
    assert_eq!(h.get_all("x-c").iter().collect::<Vec<_>>(), ["1", "2"]);
}

#[test]
fn prefixes_strip_by_segment_and_keep_the_query() {
    assert_eq!(strip_prefix("/v1/items?x=1", "/v1"), "/items?x=1");
    assert_eq!(strip_prefix("/v1", "/v1"), "/");
    assert_eq!(strip_prefix("/v1?x=1", "/v1"), "/?x=1");
    assert_eq!(strip_prefix("/v1x/items", "/v1"), "/v1x/items");
    assert_eq!(strip_prefix("/other", "/v1"), "/other");
}

#[test]
fn upstream_uris_are_origin_form_for_http1_and_absolute_for_h2() {
    assert_eq!(
        upstream_uri("/a?b", Some("x.test"), false)
            .expect("uri")
            .to_string(),
        "/a?b"
    );
    assert_eq!(
        upstream_uri("/a?b", Some("x.test"), true)
            .expect("uri")
            .to_string(),
        "http://x.test/a?b"
    );
}
