//! The admin API's routes, parsed from method and path alone, so every
//! request is either one of these or a precise error before anything runs.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/status` | listeners, pools, backends, XDP counters (JSON) |
//! | GET | `/metrics` | Prometheus metrics (OpenMetrics text) |
//! | POST | `/reload` | re-read the config file; 422 with the error if invalid |
//! | POST | `/backends/{pool}/{address}/drain` | no new flows |
//! | POST | `/backends/{pool}/{address}/enable` | back to its checks |
//! | POST | `/backends/{pool}/{address}/disable` | out of rotation |
//! | POST | `/backends/{pool}/{address}/weight/{n}` | new weight |
//! | GET | `/guard` | every guard list, from the file and added here |
//! | POST, DELETE | `/guard/{deny,allow}/{cidr}` | add or remove a global entry |
//! | POST, DELETE | `/listeners/{name}/guard/{deny,allow}/{cidr}` | a listener's entry |
//! | GET | `/announce` | each VIP's announcement and why |
//! | POST | `/announce/withdraw` | take every VIP off (maintenance); lasts across restarts |
//! | POST | `/announce/restore` | put back those that qualify |
//! | GET | `/xdp/log` | the level the XDP programs report at, and counts |
//! | POST | `/xdp/log/{off,error,warn,info,debug,trace}` | change it |

use std::{fmt::Write as _, net::SocketAddr};

use crate::{
    announce::control::Command,
    config::{limits::MAX_WEIGHT, model::KernelLog, values},
    runtime::{
        control::Action,
        guard_lists::{Added, List, ListChange, Scope},
    },
};

/// A request the API serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /status`.
    Status,
    /// `GET /metrics`.
    Metrics,
    /// `POST /reload`.
    Reload,
    /// Show or change the guard lists.
    Guard(ListChange),
    /// Show the announcements (`None`), or withdraw or restore the host.
    Announce(Option<Command>),
    /// Show (`None`) or set the XDP programs' diagnostics level.
    XdpLog(Option<KernelLog>),
    /// An action on one backend.
    Backend {
        /// Pool name.
        pool: String,
        /// Backend address.
        backend: SocketAddr,
        /// What to do.
        action: Action,
    },
}

/// Why a request matches no route; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such path (404).
    #[error("no endpoint `{0}`; see the README's admin API section")]
    NotFound(String),
    /// The path exists with another method (405).
    #[error("`{path}` takes {allowed}, not {method}")]
    Method {
        /// Path asked for.
        path: String,
        /// Method used.
        method: String,
        /// Method to use.
        allowed: &'static str,
    },
    /// A path segment is malformed (400).
    #[error("{0}")]
    BadRequest(String),
}

impl RouteError {
    /// The HTTP status code.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            RouteError::NotFound(_) => 404,
            RouteError::Method { .. } => 405,
            RouteError::BadRequest(_) => 400,
        }
    }
}

impl Route {
    /// The method [`route`] takes for this route.
    #[must_use]
    pub const fn method(&self) -> &'static str {
        match self {
            Route::Status
            | Route::Metrics
            | Route::Guard(ListChange::Show)
            | Route::Announce(None)
            | Route::XdpLog(None) => "GET",
            Route::Reload
            | Route::Backend { .. }
            | Route::XdpLog(Some(_))
            | Route::Guard(ListChange::Add(_))
            | Route::Announce(Some(_)) => "POST",
            Route::Guard(ListChange::Remove(_)) => "DELETE",
        }
    }

    /// The path [`route`] parses back into this route: names and addresses
    /// percent-encoded where the parser decodes them, so a pool name or an
    /// IPv6 address cannot split or end the path. A CIDR's `/` stays, since
    /// the parser takes the rest of the path as the CIDR.
    #[must_use]
    pub fn path(&self) -> String {
        match self {
            Route::Status => "/status".to_owned(),
            Route::Metrics => "/metrics".to_owned(),
            Route::Reload => "/reload".to_owned(),
            Route::Guard(ListChange::Show) => "/guard".to_owned(),
            Route::Announce(None) => "/announce".to_owned(),
            Route::Announce(Some(Command::Withdraw)) => "/announce/withdraw".to_owned(),
            Route::Announce(Some(Command::Restore)) => "/announce/restore".to_owned(),
            Route::XdpLog(None) => "/xdp/log".to_owned(),
            Route::XdpLog(Some(level)) => format!("/xdp/log/{level}"),
            Route::Guard(ListChange::Add(entry) | ListChange::Remove(entry)) => {
                let scope = match &entry.scope {
                    Scope::Global => String::new(),
                    Scope::Listener(name) => format!("/listeners/{}", encode(name)),
                };
                format!("{scope}/guard/{}/{}", entry.list.name(), entry.cidr)
            }
            Route::Backend {
                pool,
                backend,
                action,
            } => {
                let verb = match action {
                    Action::Drain => "drain".to_owned(),
                    Action::Enable => "enable".to_owned(),
                    Action::Disable => "disable".to_owned(),
                    Action::Weight(n) => format!("weight/{n}"),
                };
                let (pool, backend) = (encode(pool), encode(&backend.to_string()));
                format!("/backends/{pool}/{backend}/{verb}")
            }
        }
    }
}

/// Matches `method` and `path` (query ignored) to a route.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let want = |allowed: &'static str| {
        if method == allowed {
            Ok(())
        } else {
            Err(RouteError::Method {
                path: path.to_owned(),
                method: method.to_owned(),
                allowed,
            })
        }
    };
    match parts.as_slice() {
        ["status"] => want("GET").map(|()| Route::Status),
        ["metrics"] => want("GET").map(|()| Route::Metrics),
        ["reload"] => want("POST").map(|()| Route::Reload),
        ["guard"] => want("GET").map(|()| Route::Guard(ListChange::Show)),
        ["announce"] => want("GET").map(|()| Route::Announce(None)),
        ["announce", "withdraw"] => want("POST").map(|()| Route::Announce(Some(Command::Withdraw))),
        ["announce", "restore"] => want("POST").map(|()| Route::Announce(Some(Command::Restore))),
        ["xdp", "log"] => want("GET").map(|()| Route::XdpLog(None)),
        ["xdp", "log", level] => {
            let level = KernelLog::named(level).ok_or_else(|| {
                RouteError::BadRequest(format!(
                    "`{level}` is no diagnostics level; use off, error, warn, info, debug or trace"
                ))
            })?;
            want("POST").map(|()| Route::XdpLog(Some(level)))
        }
        ["guard", list, cidr @ ..] if !cidr.is_empty() => {
            guard_entry(method, path, Scope::Global, list, cidr)
        }
        ["listeners", name, "guard", list, cidr @ ..] if !cidr.is_empty() => {
            guard_entry(method, path, Scope::Listener(decode(name)), list, cidr)
        }
        ["backends", pool, address, rest @ ..] => {
            let action = match rest {
                ["drain"] => Action::Drain,
                ["enable"] => Action::Enable,
                ["disable"] => Action::Disable,
                ["weight", n] => Action::Weight(n.parse().map_err(|_| {
                    RouteError::BadRequest(format!(
                        "weight `{n}` is not a whole number from 0 to {MAX_WEIGHT}"
                    ))
                })?),
                _ => return Err(RouteError::NotFound(path.to_owned())),
            };
            want("POST")?;
            let text = decode(address);
            let backend = text.parse().map_err(|_| {
                RouteError::BadRequest(format!(
                    "backend `{text}` is not an address like 198.18.1.11:80 or [fd00::11]:80"
                ))
            })?;
            Ok(Route::Backend {
                pool: decode(pool),
                backend,
                action,
            })
        }
        _ => Err(RouteError::NotFound(path.to_owned())),
    }
}

/// A list entry's route: the CIDR is the rest of the path, since its
/// prefix length follows a `/`.
fn guard_entry(
    method: &str,
    path: &str,
    scope: Scope,
    list: &str,
    cidr: &[&str],
) -> Result<Route, RouteError> {
    let list = match list {
        "deny" => List::Deny,
        "allow" => List::Allow,
        _ => return Err(RouteError::NotFound(path.to_owned())),
    };
    let text = decode(&cidr.join("/"));
    let cidr = values::cidr(&text).map_err(RouteError::BadRequest)?;
    let entry = Added { scope, list, cidr };
    match method {
        "POST" => Ok(Route::Guard(ListChange::Add(entry))),
        "DELETE" => Ok(Route::Guard(ListChange::Remove(entry))),
        _ => Err(RouteError::Method {
            path: path.to_owned(),
            method: method.to_owned(),
            allowed: "POST or DELETE",
        }),
    }
}

/// Percent-encodes what a path segment cannot carry as it is (`/`, `%`,
/// `?`, IPv6 brackets, spaces, anything not ASCII); [`decode`] undoes it.
/// `:` stays, so an address reads as one.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Undoes percent-encoding (IPv6 brackets and colons arrive as `%5B`,
/// `%5D`, `%3A` from careful clients). A malformed escape stays as it is.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{Route, RouteError, route};
    use crate::{config::model::KernelLog, runtime::control::Action};

    #[test]
    fn routes_and_their_errors() {
        assert_eq!(route("GET", "/status"), Ok(Route::Status));
        assert_eq!(route("GET", "/status?x=1"), Ok(Route::Status));
        assert_eq!(
            route("POST", "/backends/web/198.18.1.11:80/drain"),
            Ok(Route::Backend {
                pool: "web".into(),
                backend: "198.18.1.11:80".parse().expect("addr"),
                action: Action::Drain,
            })
        );
        assert_eq!(
            route("POST", "/backends/web6/%5Bfd00::11%5D:80/weight/5"),
            Ok(Route::Backend {
                pool: "web6".into(),
                backend: "[fd00::11]:80".parse().expect("addr"),
                action: Action::Weight(5),
            })
        );
        let e = route("POST", "/status").expect_err("method");
        assert_eq!(e.status(), 405);
        assert!(e.to_string().contains("takes GET"), "{e}");
        assert_eq!(
            route("GET", "/backends/web/198.18.1.11:80/drain").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(route("GET", "/nothing").map_err(|e| e.status()), Err(404));
        assert_eq!(
            route("POST", "/xdp/log/debug"),
            Ok(Route::XdpLog(Some(KernelLog::Debug)))
        );
        let e = route("POST", "/xdp/log/loud").expect_err("level");
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().contains("`loud` is no diagnostics level"),
            "{e}"
        );
        assert_eq!(
            route("GET", "/xdp/log/warn").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("GET", "/announce/withdraw").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("POST", "/announce/explode").map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("POST", "/backends/web/198.18.1.11:80/explode").map_err(|e| e.status()),
            Err(404)
        );
        let bad = route("POST", "/backends/web/nowhere/drain").expect_err("address");
        assert!(matches!(bad, RouteError::BadRequest(_)) && bad.to_string().contains("nowhere"));
        let w = route("POST", "/backends/web/198.18.1.11:80/weight/lots").expect_err("weight");
        assert_eq!(w.status(), 400);
    }

    #[test]
    fn every_route_comes_back_from_its_own_method_and_path() {
        use crate::{
            config::values::cidr,
            runtime::guard_lists::{Added, List, ListChange, Scope},
        };
        let entry = |scope: Scope, list, text| Added {
            scope,
            list,
            cidr: cidr(text).expect("cidr"),
        };
        let backend = |pool: &str, address: &str, action| Route::Backend {
            pool: pool.into(),
            backend: address.parse().expect("addr"),
            action,
        };
        let web = || Scope::Listener("web".into());
        let routes = [
            Route::Status,
            Route::Metrics,
            Route::Reload,
            Route::Announce(None),
            Route::Announce(Some(crate::announce::control::Command::Withdraw)),
            Route::Announce(Some(crate::announce::control::Command::Restore)),
            Route::XdpLog(None),
            Route::XdpLog(Some(KernelLog::Off)),
            Route::XdpLog(Some(KernelLog::Trace)),
            Route::Guard(ListChange::Show),
            Route::Guard(ListChange::Add(entry(
                Scope::Global,
                List::Deny,
                "198.18.5.0/24",
            ))),
            Route::Guard(ListChange::Remove(entry(
                Scope::Global,
                List::Allow,
                "fd00:66::/64",
            ))),
            Route::Guard(ListChange::Add(entry(web(), List::Allow, "198.18.5.7"))),
            Route::Guard(ListChange::Remove(entry(web(), List::Deny, "fd00::1"))),
            Route::Guard(ListChange::Add(entry(
                Scope::Listener("odd/name %?#".into()),
                List::Deny,
                "0.0.0.0/0",
            ))),
            backend("web", "198.18.1.11:80", Action::Drain),
            backend("web", "198.18.1.11:80", Action::Enable),
            backend("web6", "[fd00::11]:80", Action::Disable),
            backend("web6", "[fd00::11]:80", Action::Weight(10_000)),
            backend(
                "a pool/with%odd?chars#",
                "198.18.1.11:80",
                Action::Weight(0),
            ),
        ];
        for r in routes {
            assert_eq!(route(r.method(), &r.path()), Ok(r.clone()), "{}", r.path());
        }
        assert_eq!(
            backend("web6", "[fd00::11]:80", Action::Weight(5)).path(),
            "/backends/web6/%5Bfd00::11%5D:80/weight/5"
        );
    }

    #[test]
    fn guard_routes_take_the_cidr_from_the_rest_of_the_path() {
        use crate::{
            config::values::cidr,
            runtime::guard_lists::{Added, List, ListChange, Scope},
        };
        assert_eq!(route("GET", "/guard"), Ok(Route::Guard(ListChange::Show)));
        assert_eq!(
            route("POST", "/guard/deny/198.18.5.0/24"),
            Ok(Route::Guard(ListChange::Add(Added {
                scope: Scope::Global,
                list: List::Deny,
                cidr: cidr("198.18.5.0/24").expect("cidr"),
            })))
        );
        assert_eq!(
            route("DELETE", "/listeners/web/guard/allow/fd00:1::%2F64"),
            Ok(Route::Guard(ListChange::Remove(Added {
                scope: Scope::Listener("web".into()),
                list: List::Allow,
                cidr: cidr("fd00:1::/64").expect("cidr"),
            })))
        );
        let host = route("POST", "/guard/deny/198.18.5.1/24").expect_err("host bits");
        assert_eq!(host.status(), 400);
        assert!(host.to_string().contains("198.18.5.0/24"), "{host}");
        assert_eq!(
            route("PUT", "/guard/deny/198.18.5.0/24").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("POST", "/guard/block/198.18.5.0/24").map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(route("POST", "/guard").map_err(|e| e.status()), Err(405));
    }
}
