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

use std::net::SocketAddr;

use crate::runtime::control::Action;

/// A request the API serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /status`.
    Status,
    /// `GET /metrics`.
    Metrics,
    /// `POST /reload`.
    Reload,
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
        ["backends", pool, address, rest @ ..] => {
            let action = match rest {
                ["drain"] => Action::Drain,
                ["enable"] => Action::Enable,
                ["disable"] => Action::Disable,
                ["weight", n] => Action::Weight(n.parse().map_err(|_| {
                    RouteError::BadRequest(format!(
                        "weight `{n}` is not a whole number from 0 to 10000"
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
    use crate::runtime::control::Action;

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
            route("POST", "/backends/web/198.18.1.11:80/explode").map_err(|e| e.status()),
            Err(404)
        );
        let bad = route("POST", "/backends/web/nowhere/drain").expect_err("address");
        assert!(matches!(bad, RouteError::BadRequest(_)) && bad.to_string().contains("nowhere"));
        let w = route("POST", "/backends/web/198.18.1.11:80/weight/lots").expect_err("weight");
        assert_eq!(w.status(), 400);
    }
}
