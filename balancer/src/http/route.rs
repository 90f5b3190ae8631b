//! The route table of one `http` listener, compiled once per config so a
//! request never tries every route: routes are indexed by host (an exact
//! map, then wildcard suffixes looked up label by label, then the routes
//! with no host), the candidates are walked in file order (first match
//! wins), and every path regex is tried at once through one `RegexSet`,
//! only when a candidate needs it.

use std::collections::HashMap;

use http::{HeaderMap, Method};
use regex::RegexSet;

use crate::config::http::{HeaderMatch, HostMatch, PathMatch, Route};

/// What a route is matched against, taken from a request.
pub struct Request<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// Its host, from [`host_of`].
    pub host: Option<&'a str>,
    /// Its path (no query).
    pub path: &'a str,
    /// Its headers.
    pub headers: &'a HeaderMap,
}

/// A listener's routes, indexed.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Exact host -> routes with that host, ascending.
    exact: HashMap<String, Vec<usize>>,
    /// Suffix (with its leading dot) -> routes with that wildcard, ascending.
    suffixes: HashMap<String, Vec<usize>>,
    /// Routes with no host matcher, ascending.
    any_host: Vec<usize>,
    /// Every path regex, once.
    regexes: RegexSet,
    /// Route -> its regex's index in `regexes`.
    regex_of: HashMap<usize, usize>,
}

impl RouteTable {
    /// Compiles `routes` (validated: every regex builds).
    #[must_use]
    pub fn new(routes: &[Route]) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut suffixes: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_host = Vec::new();
        let mut patterns = Vec::new();
        let mut regex_of = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.matcher.host {
                Some(HostMatch::Exact(h)) => exact.entry(h.clone()).or_default().push(i),
                Some(HostMatch::Suffix(s)) => suffixes.entry(s.clone()).or_default().push(i),
                None => any_host.push(i),
            }
            if let Some(PathMatch::Regex(re)) = &r.matcher.path {
                regex_of.insert(i, patterns.len());
                patterns.push(re.as_str().to_owned());
            }
        }
        // Each pattern compiled on its own at validation, so together they
        // compile too; an empty set if that ever failed matches nothing.
        let regexes = RegexSet::new(&patterns).unwrap_or_else(|_| RegexSet::empty());
        Self {
            routes: routes.to_vec(),
            exact,
            suffixes,
            any_host,
            regexes,
            regex_of,
        }
    }

    /// The routes, in file order.
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route `req` matches, by index.
    #[must_use]
    pub fn find(&self, req: &Request<'_>) -> Option<usize> {
        let mut lists: Vec<&[usize]> = Vec::with_capacity(4);
        if let Some(host) = req.host {
            if let Some(v) = self.exact.get(host) {
                lists.push(v);
            }
            // `a.b.example.test` may match `.b.example.test`,
            // `.example.test` and `.test`: one lookup per label. A dot at
            // the start leaves no label for the wildcard to stand for:
            // `.test` is not below `*.test` (found by the route_table
            // fuzz target).
            for (k, _) in host.match_indices('.').filter(|(k, _)| *k > 0) {
                if let Some(v) = self.suffixes.get(&host[k..]) {
                    lists.push(v);
                }
            }
        }
        lists.push(&self.any_host);
        let mut regex_hits = None;
        let mut cursors = vec![0usize; lists.len()];
        loop {
            // The lowest next index among the lists: file order.
            let (which, &i) = lists
                .iter()
                .zip(&cursors)
                .enumerate()
                .filter_map(|(w, (l, &c))| l.get(c).map(|i| (w, i)))
                .min_by_key(|(_, i)| **i)?;
            cursors[which] += 1;
            if self.rest_matches(i, req, &mut regex_hits) {
                return Some(i);
            }
        }
    }

    /// Whether route `i` matches `req` on everything but the host.
    fn rest_matches(
        &self,
        i: usize,
        req: &Request<'_>,
        regex_hits: &mut Option<regex::SetMatches>,
    ) -> bool {
        let m = &self.routes[i].matcher;
        if !m.methods.is_empty() && !m.methods.contains(req.method) {
            return false;
        }
        let path_ok = match &m.path {
            None => true,
            Some(PathMatch::Exact(p)) => req.path == p,
            Some(PathMatch::Prefix(p)) => prefix_matches(p, req.path),
            Some(PathMatch::Regex(_)) => {
                let hits = regex_hits.get_or_insert_with(|| self.regexes.matches(req.path));
                self.regex_of.get(&i).is_some_and(|&r| hits.matched(r))
            }
        };
        path_ok
            && m.headers.iter().all(|(name, want)| match want {
                HeaderMatch::Present => req.headers.contains_key(name),
                HeaderMatch::Value(v) => req.headers.get_all(name).iter().any(|h| h == v),
            })
    }
}

/// Whether `path` is `prefix` or below it, by whole segments. `prefix` has
/// no trailing slash, except `/` itself, which matches everything.
#[must_use]
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The host a request is for, lowercase and without its port or a
/// trailing dot: an absolute-form URI's authority wins over `Host`
/// (RFC 9112, 3.2.2), and HTTP/2's `:authority` arrives as the URI's.
#[must_use]
pub fn host_of(uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => headers.get(http::header::HOST)?.to_str().ok()?,
    };
    // Userinfo never belongs in a host to route by.
    let raw = raw.rsplit('@').next().unwrap_or(raw);
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: keep the brackets, drop the port.
        let end = rest.find(']')?;
        &raw[..end + 2]
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
