//! The CLI's side of the admin API: one [`Route`] sent to a running daemon,
//! its JSON body back, or the daemon's refusal as an error. The path comes
//! from [`Route::path`], the inverse of the daemon's parser, so the two
//! sides cannot disagree on it. Plain HTTP/1.1 over a blocking socket; the
//! CLI makes one call and exits.

use std::{
    fmt::Write as _,
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use super::routes::Route;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error(
        "cannot reach the admin API at `{address}`: {source} (is the daemon running, with this admin.listen?)"
    )]
    Connect {
        /// Address tried.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The answer was not HTTP with a JSON body.
    #[error("the admin API at `{0}` gave an answer that is not HTTP with JSON")]
    Garbled(SocketAddr),
    /// The daemon answered with a status other than 200; the message is its
    /// `error` text.
    #[error("{message}")]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// Why, in the daemon's words.
        message: String,
    },
}

/// Sends `route` to the daemon at `address` (with `token` as a bearer
/// token) and returns the JSON body of its 200 answer; any other status is
/// [`ClientError::Refused`] with the daemon's reason.
pub fn send(
    address: SocketAddr,
    route: &Route,
    token: Option<&str>,
) -> Result<serde_json::Value, ClientError> {
    let (status, body) = request(address, route.method(), &route.path(), token)?;
    if status == 200 {
        return Ok(body);
    }
    let refused = if *route == Route::Reload {
        "the admin API refused the reload"
    } else {
        "the admin API refused the request"
    };
    Err(ClientError::Refused {
        status,
        message: body["error"].as_str().unwrap_or(refused).to_owned(),
    })
}

/// Sends `method path` to `address` (with `token` as a bearer token) and
/// returns the status code and the JSON body.
fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value), ClientError> {
    let connect = |source| ClientError::Connect { address, source };
    let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(5)).map_err(connect)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(connect)?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(connect)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(connect)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(ClientError::Garbled(address))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(ClientError::Garbled(address))?;
    let json = serde_json::from_str(body).map_err(|_| ClientError::Garbled(address))?;
    Ok((code, json))
}

/// The lists of a `/guard` answer as text: one line per entry, saying
/// where it applies and where it came from.
#[must_use]
pub fn render_lists(lists: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut scope = |name: &str, v: &serde_json::Value| {
        for list in ["deny", "allow"] {
            for (from, label) in [("file", "config file"), ("added", "admin API")] {
                for e in v[list][from].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "{name:<16} {list:<5} {:<43} {label}",
                        e.as_str().unwrap_or("?")
                    );
                }
            }
        }
    };
    scope("(global)", &lists["global"]);
    if let Some(ls) = lists["listeners"].as_object() {
        for (name, v) in ls {
            scope(name, v);
        }
    }
    if out.is_empty() {
        out.push_str("no guard list has an entry\n");
    }
    out
}
