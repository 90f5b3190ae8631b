//! The validated model of the HTTP layer: an `http` listener's routes
//! (matchers, targets, rewrites, limits) and protocol limits, and a pool's
//! upstream settings. Everything here is checked and compiled at load
//! (header names parsed, regexes built), so a request never meets a value
//! that could fail.

use std::{num::NonZeroU32, time::Duration};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;

/// An `http` listener's settings beyond the listener's own.
#[derive(Clone, Debug, Default)]
pub struct HttpListener {
    /// Routes in file order; the first that matches wins.
    pub routes: Vec<Route>,
    /// Timeouts and size limits.
    pub limits: HttpLimits,
    /// Rewrites of every request forwarded, before the route's own.
    pub request_headers: HeaderRewrite,
    /// Rewrites of every response, after the route's own.
    pub response_headers: HeaderRewrite,
    /// Where the access log goes, if anywhere.
    pub access_log: Option<AccessLog>,
    /// TLS termination, if the listener has it.
    pub tls: Option<super::tls::TlsListener>,
}

/// One route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its name in metrics, status and the access log (`routes[].name`,
    /// else `route<index>`).
    pub name: String,
    /// What a request must look like.
    pub matcher: Matcher,
    /// Where a matching request goes.
    pub target: Target,
    /// A path prefix taken off before forwarding.
    pub strip_prefix: Option<String>,
    /// Rewrites of the request, after the listener's.
    pub request_headers: HeaderRewrite,
    /// Rewrites of the response, before the listener's.
    pub response_headers: HeaderRewrite,
    /// Requests per key beyond which the route answers 429.
    pub rate_limit: Option<RateLimit>,
    /// Compress text answers for clients that accept it.
    pub compress: bool,
}

/// What a request must look like; every given part must match.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    /// The request's host (port and case ignored).
    pub host: Option<HostMatch>,
    /// The request's path.
    pub path: Option<PathMatch>,
    /// Methods accepted; empty accepts any.
    pub methods: Vec<Method>,
    /// Headers that must be present, or have a value.
    pub headers: Vec<(HeaderName, HeaderMatch)>,
}

/// A host matcher, lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// This host only.
    Exact(String),
    /// Any host ending in this suffix, which starts with a dot
    /// (`*.example.test` -> `.example.test`); the bare domain does not
    /// match.
    Suffix(String),
}

impl HostMatch {
    /// Whether `host` (lowercase, no port) is one this matcher takes.
    #[must_use]
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// A path matcher.
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// This path only.
    Exact(String),
    /// This path or any below it, by whole segments: `/api` matches `/api`
    /// and `/api/x`, not `/apix`. Stored without a trailing slash (but `/`
    /// stays `/`).
    Prefix(String),
    /// Paths the regex finds a match in.
    Regex(Regex),
}

/// A header matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderMatch {
    /// Present, whatever its value.
    Present,
    /// Present with exactly this value.
    Value(HeaderValue),
}

/// Where a matching request goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// One pool, by index into the config's pools.
    Pool(usize),
    /// Pools by weight (pool index, weight); weights are not all zero.
    Split(Vec<(usize, u32)>),
    /// An answer that sends the client elsewhere.
    Redirect(Redirect),
    /// A fixed answer; no backend is asked.
    Answer {
        /// Its status.
        status: StatusCode,
        /// Its body (text).
        body: String,
    },
}

/// A redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
    /// Where to.
    pub to: RedirectTo,
}

/// Where a redirect points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectTo {
    /// The same host and path (and query) under another scheme, e.g.
    /// `https`.
    Scheme(String),
    /// A fixed location.
    Location(HeaderValue),
}

/// Header rewrites, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderRewrite {
    /// Headers removed.
    pub remove: Vec<HeaderName>,
    /// Headers set, replacing any value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers added beside any value.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderRewrite {
    /// Whether it changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A per-route rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// What requests are counted by.
    pub key: RateKey,
    /// Requests per second.
    pub rate: NonZeroU32,
    /// Requests at once; at least `rate`.
    pub burst: NonZeroU32,
}

/// What a rate limit counts requests by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    /// The client's address (IPv6 by /64).
    ClientIp,
    /// A header's value; requests without it share one bucket.
    Header(HeaderName),
}

/// Protocol timeouts and limits of an `http` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The whole request head must arrive within it (408, then close).
    pub header_timeout: Duration,
    /// The largest request head (431 beyond).
    pub max_header_bytes: usize,
    /// The most header fields in a request (431 beyond).
    pub max_headers: usize,
    /// The longest pause between pieces of a request body.
    pub body_timeout: Duration,
    /// How long a backend may take to start its answer (504 beyond).
    pub response_timeout: Duration,
    /// How long an idle client connection is kept.
    pub keepalive_timeout: Duration,
    /// The largest request body (413 beyond), if bounded.
    pub max_body: Option<u64>,
    /// Concurrent HTTP/2 streams per client connection.
    pub max_streams: u32,
}

/// Where the access log goes and how it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// A file appended to, or `None` for standard output.
    pub path: Option<std::path::PathBuf>,
    /// The line format.
    pub format: LogFormat,
}

/// An access log line's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// The combined log format (Apache, nginx) with route, backend,
    /// duration and retries appended.
    Combined,
}

/// How the HTTP layer speaks to a pool's backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolHttp {
    /// HTTP/1.1, or HTTP/2 in cleartext or over TLS.
    pub version: UpstreamVersion,
    /// Idle connections kept per backend.
    pub max_idle: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

/// The protocol toward backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamVersion {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 over cleartext, by prior knowledge (gRPC backends).
    H2c,
    /// HTTP/2 over TLS (the pool's `tls`), agreed by ALPN.
    H2,
}

impl UpstreamVersion {
    /// Whether it is HTTP/2 (one shared connection per backend).
    #[must_use]
    pub const fn is_h2(self) -> bool {
        matches!(self, Self::H2c | Self::H2)
    }
}
