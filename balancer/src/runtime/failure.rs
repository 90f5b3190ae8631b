//! Why a backend failed: one enum for active checks, the proxies' passive
//! reports and, later, the HTTP layer's own answers (a timeout is a 504,
//! everything else a 502). The backend is always the side that failed; the
//! variant says how, so the control loop, status and metrics never parse
//! text, and a message is written in one place.

use std::{fmt, io, time::Duration};

/// What the balancer was doing when an I/O error struck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Opening a socket toward the backend.
    Bind,
    /// Connecting.
    Connect,
    /// Sending a request.
    Send,
    /// Reading the answer.
    Read,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Bind => "bind",
            Step::Connect => "connect",
            Step::Send => "send",
            Step::Read => "read",
        })
    }
}

/// How a backend failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The backend refused the connection (RST to a SYN, or ICMP port
    /// unreachable for UDP).
    #[error("{0}: connection refused")]
    Refused(Step),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The backend reset an established connection.
    #[error("the backend reset a connection")]
    Reset,
    /// The backend closed without a byte of answer to a request.
    #[error("the backend closed a connection without answering")]
    Unanswered,
    /// The backend accepted a request and never answered before the idle
    /// timeout.
    #[error("the backend accepted a connection and never answered")]
    Hung,
    /// An HTTP answer whose status is outside the accepted range.
    #[error("HTTP status {got}, expected {}-{}", .want.0, .want.1)]
    Status {
        /// The status received.
        got: u16,
        /// The accepted range, inclusive.
        want: (u16, u16),
    },
    /// An answer that is not what the check expects: not HTTP, or a UDP
    /// answer without the expected text. `got` is its start, for the log.
    #[error("unexpected answer {got:?}: {why}")]
    Answer {
        /// The answer's first characters.
        got: String,
        /// What was wrong with it.
        why: &'static str,
    },
    /// The TLS handshake with the backend failed (its certificate did not
    /// verify, no common protocol, no ALPN agreement); rustls' reason.
    #[error("TLS to the backend failed: {0}")]
    Tls(String),
    /// Any other I/O error.
    #[error("{step}: {kind}")]
    Io {
        /// What was being done.
        step: Step,
        /// The error's kind.
        kind: io::ErrorKind,
    },
}

/// The longest excerpt of a bad answer kept for the log and status.
const EXCERPT: usize = 60;

impl Failure {
    /// Classifies an I/O error met during `step`.
    #[must_use]
    pub fn io(step: Step, e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused(step),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Failure::Reset,
            kind => Failure::Io { step, kind },
        }
    }

    /// A bad answer, keeping its first characters.
    #[must_use]
    pub fn answer(bytes: &[u8], why: &'static str) -> Self {
        Failure::Answer {
            got: String::from_utf8_lossy(bytes)
                .chars()
                .take(EXCERPT)
                .collect(),
            why,
        }
    }

    /// The status an HTTP proxy answers a client with when this failure
    /// ends its request: 504 when the backend was too slow, 502 otherwise.
    #[must_use]
    pub const fn gateway_status(&self) -> u16 {
        match self {
            Failure::Timeout(_) | Failure::Hung => 504,
            _ => 502,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{io, time::Duration};

    use super::{Failure, Step};

    #[test]
    fn io_errors_are_classified_by_kind() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Failure::io(Step::Connect, &refused),
            Failure::Refused(Step::Connect)
        );
        for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::BrokenPipe] {
            assert_eq!(
                Failure::io(Step::Read, &io::Error::from(kind)),
                Failure::Reset
            );
        }
        let other = io::Error::from(io::ErrorKind::HostUnreachable);
        let f = Failure::io(Step::Connect, &other);
        assert_eq!(
            f,
            Failure::Io {
                step: Step::Connect,
                kind: io::ErrorKind::HostUnreachable
            }
        );
        assert_eq!(f.to_string(), "connect: host unreachable");
    }

    #[test]
    fn messages_name_what_failed() {
        assert_eq!(
            Failure::Timeout(Duration::from_millis(300)).to_string(),
            "no answer within 300ms"
        );
        assert_eq!(
            Failure::Refused(Step::Connect).to_string(),
            "connect: connection refused"
        );
        assert_eq!(
            Failure::Status {
                got: 503,
                want: (200, 399)
            }
            .to_string(),
            "HTTP status 503, expected 200-399"
        );
        let long = Failure::answer(&[b'x'; 500], "not an HTTP response");
        assert!(
            long.to_string()
                .starts_with(&format!("unexpected answer \"{}\"", "x".repeat(60)))
        );
    }

    #[test]
    fn slow_backends_are_gateway_timeouts_and_the_rest_bad_gateways() {
        assert_eq!(
            Failure::Timeout(Duration::from_secs(1)).gateway_status(),
            504
        );
        assert_eq!(Failure::Hung.gateway_status(), 504);
        for f in [
            Failure::Refused(Step::Connect),
            Failure::Reset,
            Failure::Unanswered,
            Failure::Status {
                got: 500,
                want: (200, 299),
            },
            Failure::answer(b"SSH-2.0", "not an HTTP response"),
            Failure::Io {
                step: Step::Send,
                kind: std::io::ErrorKind::Other,
            },
        ] {
            assert_eq!(f.gateway_status(), 502, "{f}");
        }
    }
}
