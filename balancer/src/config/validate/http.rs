//! The HTTP keys of a listener (`routes`, `http`) and of a pool (`http`,
//! `keepalive`): every matcher compiled (regexes built here, so a bad one
//! is a `file:line:column` error at `balancer check`, never at a reload),
//! every header name and value parsed, every pool a route names defined.

use std::collections::{BTreeMap, HashMap};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::RegexBuilder;

use super::Problems;
use crate::config::{
    defaults::{
        DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
        DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, DEFAULT_MAX_STREAMS,
        DEFAULT_REDIRECT_STATUS, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_UPSTREAM_IDLE_TIMEOUT,
        DEFAULT_UPSTREAM_MAX_IDLE,
    },
    http::{
        AccessLog, HeaderMatch, HeaderRewrite, HostMatch, HttpLimits, HttpListener, LogFormat,
        Matcher, PathMatch, PoolHttp, RateKey, RateLimit, Redirect, RedirectTo, Route, Target,
        UpstreamVersion,
    },
    limits::{
        MAX_HEADER_BYTES, MAX_HEADERS, MAX_RATE, MAX_REGEX_SIZE, MAX_ROUTES, MAX_STREAMS, MAX_TEXT,
        MAX_UPSTREAM_IDLE, MAX_WEIGHT,
    },
    raw::{RawAccessLog, RawHeaders, RawHttp, RawKeepalive, RawMatch, RawRateLimit, RawRoute},
};

/// Headers the proxy manages itself: a rewrite may not touch them.
const MANAGED: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The HTTP settings of listener `i` (in `http` mode) from its `routes`
/// and `http` block; `pools` maps pool names to indexes.
pub(super) fn listener(
    i: usize,
    routes: &[RawRoute],
    http: Option<&RawHttp>,
    pools: &HashMap<&str, usize>,
    p: &mut Problems,
) -> HttpListener {
    let at = |f: &str| format!("listeners[{i}].{f}");
    p.at_most(at("routes"), routes.len(), MAX_ROUTES, "routes");
    let routes = routes
        .iter()
        .enumerate()
        .map(|(r, raw)| route(&at(&format!("routes[{r}]")), r, raw, pools, p))
        .collect();
    let default = RawHttp::default();
    let h = http.unwrap_or(&default);
    let at = |f: &str| format!("listeners[{i}].http.{f}");
    HttpListener {
        routes,
        limits: limits(h, &at, p),
        request_headers: rewrite(&at("request_headers"), h.request_headers.as_ref(), p),
        response_headers: rewrite(&at("response_headers"), h.response_headers.as_ref(), p),
        access_log: h
            .access_log
            .as_ref()
            .map(|a| access_log(&at("access_log"), a, p)),
        tls: None,
    }
}

fn limits(h: &RawHttp, at: &dyn Fn(&str) -> String, p: &mut Problems) -> HttpLimits {
    // (key, value, default, ceiling) -> the bounded count as a size.
    let size = |p: &mut Problems, (f, v, default, max): (&str, Option<u64>, u64, u64)| {
        usize::try_from(p.bounded(&at(f), v, default, max).get()).unwrap_or(usize::MAX)
    };
    HttpLimits {
        header_timeout: p.duration(
            &at("header_timeout"),
            h.header_timeout.as_ref(),
            DEFAULT_HEADER_TIMEOUT,
        ),
        max_header_bytes: size(
            p,
            (
                "max_header_bytes",
                h.max_header_bytes,
                DEFAULT_MAX_HEADER_BYTES,
                MAX_HEADER_BYTES,
            ),
        ),
        max_headers: size(
            p,
            (
                "max_headers",
                h.max_headers,
                DEFAULT_MAX_HEADERS,
                MAX_HEADERS,
            ),
        ),
        body_timeout: p.duration(
            &at("body_timeout"),
            h.body_timeout.as_ref(),
            DEFAULT_BODY_TIMEOUT,
        ),
        response_timeout: p.duration(
            &at("response_timeout"),
            h.response_timeout.as_ref(),
            DEFAULT_RESPONSE_TIMEOUT,
        ),
        keepalive_timeout: p.duration(
            &at("keepalive_timeout"),
            h.keepalive_timeout.as_ref(),
            DEFAULT_KEEPALIVE_TIMEOUT,
        ),
        max_body: h.max_body,
        max_streams: p
            .bounded(
                &at("max_streams"),
                h.max_streams,
                DEFAULT_MAX_STREAMS,
                MAX_STREAMS,
            )
            .get(),
    }
}

fn access_log(at: &str, raw: &RawAccessLog, p: &mut Problems) -> AccessLog {
    let path = match raw.path.trim() {
        "" => {
            p.add(
                format!("{at}.path"),
                "must not be empty (`stdout` or a file)",
            );
            None
        }
        "stdout" | "-" => None,
        file => Some(std::path::PathBuf::from(file)),
    };
    AccessLog {
        path,
        format: raw.format.unwrap_or(LogFormat::Combined),
    }
}

fn route(
    at: &str,
    index: usize,
    raw: &RawRoute,
    pools: &HashMap<&str, usize>,
    p: &mut Problems,
) -> Route {
    let name = match &raw.name {
        Some(n) if n.trim().is_empty() => {
            p.add(format!("{at}.name"), "must not be empty");
            format!("route{index}")
        }
        Some(n) => n.clone(),
        None => format!("route{index}"),
    };
    let default = RawMatch::default();
    let matcher = matcher(
        &format!("{at}.match"),
        raw.matcher.as_ref().unwrap_or(&default),
        p,
    );
    let strip_prefix = raw.strip_prefix.as_ref().and_then(|s| {
        let field = format!("{at}.strip_prefix");
        if s.starts_with('/') {
            Some(s.trim_end_matches('/').to_owned()).filter(|s| !s.is_empty())
        } else {
            p.add(field, format!("`{s}` must start with `/`"));
            None
        }
    });
    Route {
        name,
        matcher,
        target: target(at, raw, pools, p),
        strip_prefix,
        request_headers: rewrite(
            &format!("{at}.request_headers"),
            raw.request_headers.as_ref(),
            p,
        ),
        response_headers: rewrite(
            &format!("{at}.response_headers"),
            raw.response_headers.as_ref(),
            p,
        ),
        rate_limit: raw
            .rate_limit
            .as_ref()
            .and_then(|r| rate_limit(&format!("{at}.rate_limit"), r, p)),
        compress: raw.compress.unwrap_or(false),
    }
}

fn matcher(at: &str, raw: &RawMatch, p: &mut Problems) -> Matcher {
    if raw.sni.is_some() {
        p.add(
            format!("{at}.sni"),
            "`sni` routes TLS without terminating it, on `mode: proxy` listeners; an `http` listener matches the request's `host` (under `tls`, the SNI the certificate was picked by)",
        );
    }
    let host = raw
        .host
        .as_ref()
        .and_then(|h| p.check(&format!("{at}.host"), host(h)));
    let given: Vec<&str> = [
        ("path", raw.path.is_some()),
        ("path_prefix", raw.path_prefix.is_some()),
        ("path_regex", raw.path_regex.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| *k)
    .collect();
    if given.len() > 1 {
        p.add(
            format!("{at}.{}", given[1]),
            format!(
                "give one of `path`, `path_prefix` and `path_regex`, not also `{}`",
                given[0]
            ),
        );
    }
    let path = if let Some(x) = &raw.path {
        p.check(&format!("{at}.path"), absolute(x))
            .map(|()| PathMatch::Exact(x.clone()))
    } else if let Some(x) = &raw.path_prefix {
        p.check(&format!("{at}.path_prefix"), absolute(x))
            .map(|()| {
                let trimmed = x.trim_end_matches('/');
                PathMatch::Prefix(if trimmed.is_empty() {
                    "/".to_owned()
                } else {
                    trimmed.to_owned()
                })
            })
    } else if let Some(x) = &raw.path_regex {
        let built = RegexBuilder::new(x).size_limit(MAX_REGEX_SIZE).build();
        p.check(
            &format!("{at}.path_regex"),
            built.map_err(|e| format!("`{x}` is not a valid regex: {e}")),
        )
        .map(PathMatch::Regex)
    } else {
        None
    };
    let methods = raw
        .methods
        .iter()
        .enumerate()
        .filter_map(|(m, text)| p.check(&format!("{at}.methods[{m}]"), method(text)))
        .collect();
    let headers = raw
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let field = format!("{at}.headers.{name}");
            let name = p.check(&field, header_name(name))?;
            let want = if value == "*" {
                HeaderMatch::Present
            } else {
                HeaderMatch::Value(p.check(&field, header_value(value))?)
            };
            Some((name, want))
        })
        .collect();
    Matcher {
        host,
        path,
        methods,
        headers,
    }
}

fn target(at: &str, raw: &RawRoute, pools: &HashMap<&str, usize>, p: &mut Problems) -> Target {
    let given = [
        raw.pool.is_some(),
        raw.split.is_some(),
        raw.redirect.is_some(),
        raw.answer.is_some(),
    ]
    .iter()
    .filter(|on| **on)
    .count();
    if given != 1 {
        p.add(
            at.to_owned(),
            "give exactly one of `pool`, `split`, `redirect` and `answer`",
        );
    }
    let pool_of = |p: &mut Problems, field: String, name: &str| {
        let index = pools.get(name).copied();
        if index.is_none() {
            p.add(field, format!("`{name}` is not a defined pool"));
        }
        index.unwrap_or(0)
    };
    if let Some(name) = &raw.pool {
        return Target::Pool(pool_of(p, format!("{at}.pool"), name));
    }
    if let Some(split) = &raw.split {
        return Target::Split(self::split(&format!("{at}.split"), split, &pool_of, p));
    }
    if let Some(r) = &raw.redirect {
        let field = format!("{at}.redirect");
        let status = r.status.unwrap_or(DEFAULT_REDIRECT_STATUS);
        if ![301, 302, 303, 307, 308].contains(&status) {
            p.add(
                format!("{field}.status"),
                format!("`{status}` is not a redirect status (301, 302, 303, 307 or 308)"),
            );
        }
        let to = match (&r.scheme, &r.location) {
            (Some(s), None) if s == "http" || s == "https" => RedirectTo::Scheme(s.clone()),
            (Some(s), None) => {
                p.add(
                    format!("{field}.scheme"),
                    format!("`{s}` is not `http` or `https`"),
                );
                RedirectTo::Scheme("https".to_owned())
            }
            (None, Some(l)) => RedirectTo::Location(
                p.check(&format!("{field}.location"), header_value(l))
                    .unwrap_or(HeaderValue::from_static("/")),
            ),
            _ => {
                p.add(field, "give one of `scheme` and `location`");
                RedirectTo::Scheme("https".to_owned())
            }
        };
        return Target::Redirect(Redirect {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
            to,
        });
    }
    if let Some(a) = &raw.answer {
        let field = format!("{at}.answer");
        let status = match StatusCode::from_u16(a.status) {
            Ok(s) if (200..=599).contains(&a.status) => s,
            _ => {
                p.add(
                    format!("{field}.status"),
                    format!("`{}` is not a status from 200 to 599", a.status),
                );
                StatusCode::OK
            }
        };
        let body = a
            .body
            .clone()
            .unwrap_or_else(|| format!("{}\n", status.canonical_reason().unwrap_or("answer")));
        if body.len() > MAX_TEXT {
            p.add(
                format!("{field}.body"),
                format!("{} bytes exceed the limit of {MAX_TEXT}", body.len()),
            );
        }
        return Target::Answer { status, body };
    }
    Target::Answer {
        status: StatusCode::NOT_FOUND,
        body: String::new(),
    }
}

fn split(
    at: &str,
    raw: &BTreeMap<String, i64>,
    pool_of: &dyn Fn(&mut Problems, String, &str) -> usize,
    p: &mut Problems,
) -> Vec<(usize, u32)> {
    if raw.is_empty() {
        p.add(at.to_owned(), "needs at least one pool with a weight");
    }
    let out: Vec<(usize, u32)> = raw
        .iter()
        .map(|(name, &w)| {
            let field = format!("{at}.{name}");
            let index = pool_of(p, field.clone(), name);
            let weight = u32::try_from(w).ok().filter(|w| *w <= MAX_WEIGHT);
            if weight.is_none() {
                p.add(
                    field,
                    format!("weight `{w}` is out of range (expected 0..={MAX_WEIGHT})"),
                );
            }
            (index, weight.unwrap_or(0))
        })
        .collect();
    if !raw.is_empty() && out.iter().all(|(_, w)| *w == 0) {
        p.add(
            at.to_owned(),
            "every weight is 0: no request could go anywhere",
        );
    }
    out
}

fn rate_limit(at: &str, raw: &RawRateLimit, p: &mut Problems) -> Option<RateLimit> {
    let k = raw.key.trim();
    let key = if k == "client_ip" {
        Some(RateKey::ClientIp)
    } else if let Some(h) = k.strip_prefix("header:") {
        p.check(&format!("{at}.key"), header_name(h.trim()))
            .map(RateKey::Header)
    } else {
        p.add(
            format!("{at}.key"),
            format!("`{k}` is not `client_ip` or `header:<name>`"),
        );
        None
    };
    let rate = p.bounded(&format!("{at}.rate"), Some(raw.rate), 1, MAX_RATE);
    let burst = p.bounded(
        &format!("{at}.burst"),
        raw.burst.or(Some(raw.rate)),
        1,
        MAX_RATE,
    );
    if burst < rate {
        p.add(
            format!("{at}.burst"),
            format!("`{burst}` is below the rate `{rate}` (a burst holds at least one second)"),
        );
    }
    Some(RateLimit {
        key: key?,
        rate,
        burst,
    })
}

/// Header rewrites from `raw`; the proxy's own headers are refused.
fn rewrite(at: &str, raw: Option<&RawHeaders>, p: &mut Problems) -> HeaderRewrite {
    let Some(raw) = raw else {
        return HeaderRewrite::default();
    };
    let name = |p: &mut Problems, field: String, text: &str| {
        let n = p.check(&field, header_name(text))?;
        if MANAGED.contains(&n.as_str()) {
            p.add(
                field,
                format!(
                    "`{n}` is managed by the proxy (hop-by-hop or framing) and cannot be rewritten"
                ),
            );
            return None;
        }
        Some(n)
    };
    let remove = raw
        .remove
        .iter()
        .enumerate()
        .filter_map(|(k, n)| name(p, format!("{at}.remove[{k}]"), n))
        .collect();
    let mut pairs =
        |which: &str, map: &BTreeMap<String, String>| -> Vec<(HeaderName, HeaderValue)> {
            map.iter()
                .filter_map(|(n, v)| {
                    let field = format!("{at}.{which}.{n}");
                    let n = name(p, field.clone(), n)?;
                    Some((n, p.check(&field, header_value(v))?))
                })
                .collect()
        };
    let set = pairs("set", &raw.set);
    let add = pairs("add", &raw.add);
    HeaderRewrite { remove, set, add }
}

/// A pool's upstream settings from its `http` and `keepalive` keys.
pub(super) fn pool(
    at: &dyn Fn(&str) -> String,
    version: Option<UpstreamVersion>,
    keepalive: Option<&RawKeepalive>,
    p: &mut Problems,
) -> PoolHttp {
    let max_idle = keepalive.and_then(|k| k.max_idle);
    let idle_timeout = keepalive.and_then(|k| k.idle_timeout.as_ref());
    // 0 idle connections is a valid choice: no keep-alive toward backends.
    let max_idle = match max_idle {
        Some(n) if n > MAX_UPSTREAM_IDLE => {
            p.add(
                at("keepalive.max_idle"),
                format!("`{n}` is out of range (expected 0..={MAX_UPSTREAM_IDLE})"),
            );
            DEFAULT_UPSTREAM_MAX_IDLE
        }
        Some(n) => n,
        None => DEFAULT_UPSTREAM_MAX_IDLE,
    };
    PoolHttp {
        version: version.unwrap_or(UpstreamVersion::Http1),
        max_idle: usize::try_from(max_idle).unwrap_or(usize::MAX),
        idle_timeout: p.duration(
            &at("keepalive.idle_timeout"),
            idle_timeout,
            DEFAULT_UPSTREAM_IDLE_TIMEOUT,
        ),
    }
}

/// A host matcher: `name` or `*.suffix`, lowercase, no port (also the
/// SNI of TCP routes).
pub(super) fn host(text: &str) -> Result<HostMatch, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if name.is_empty() || name.contains('*') {
        return Err(format!(
            "`{text}` is not a host: use `name.example` or a leading `*.` wildcard like `*.example.test`"
        ));
    }
    if !name.chars().all(ok) || name.starts_with('.') || name.ends_with('.') {
        return Err(format!(
            "`{text}` is not a host name (letters, digits, `-`, `.`; no port, no scheme)"
        ));
    }
    Ok(if wild {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

fn absolute(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("`{path}` must start with `/`"))
    }
}

fn method(text: &str) -> Result<Method, String> {
    if text.is_empty() || text.chars().any(|c| !c.is_ascii_uppercase() && c != '-') {
        return Err(format!(
            "`{text}` is not an HTTP method (methods are uppercase, like `GET`)"
        ));
    }
    Method::from_bytes(text.as_bytes()).map_err(|_| format!("`{text}` is not an HTTP method"))
}

fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("`{text}` is not a valid header name"))
}

fn header_value(text: &str) -> Result<HeaderValue, String> {
    if text.len() > MAX_TEXT {
        return Err(format!(
            "{} bytes exceed the limit of {MAX_TEXT}",
            text.len()
        ));
    }
    HeaderValue::from_str(text).map_err(|_| {
        format!("`{text}` is not a valid header value (visible ASCII, spaces and tabs only)")
    })
}
