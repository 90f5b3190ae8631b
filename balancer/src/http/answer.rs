//! The answers the HTTP layer gives itself (sozu's `answers`, linkerd's
//! `respond`): one enum, one status each, a short text body, and
//! `Connection: close` wherever the request's framing can no longer be
//! trusted, so nothing the client sends after it is read as a request.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{Body, full};
use crate::runtime::{attempt::Unreachable, failure::Failure};

/// An answer of the balancer's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 400: the request is malformed.
    BadRequest(&'static str),
    /// 404: no route matches and the listener has no pool.
    NoRoute,
    /// 408: the request head or body did not arrive in time.
    RequestTimeout,
    /// 413: the request body is larger than `max_body`.
    TooLarge,
    /// 429: the route's rate limit for this key is spent; retry after
    /// this many seconds.
    RateLimited(u64),
    /// 431: the request head is larger than `max_header_bytes`.
    HeadTooLarge,
    /// 502: the backend failed or answered something that is not HTTP.
    BadGateway,
    /// 502: the TLS handshake with the backend failed (its certificate
    /// did not verify, or no protocol was agreed).
    BackendTls,
    /// 503: no backend of the pool takes requests.
    Unavailable,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
}

impl Answer {
    /// The answer for a request no backend took.
    #[must_use]
    pub fn unreachable(why: &Unreachable) -> Self {
        match why {
            Unreachable::NoBackend => Answer::Unavailable,
            Unreachable::Failed { last, .. } => Answer::failed(last),
        }
    }

    /// The answer for a backend that failed this way.
    #[must_use]
    pub fn failed(f: &Failure) -> Self {
        if f.gateway_status() == 504 {
            Answer::GatewayTimeout
        } else if matches!(f, Failure::Tls(_)) {
            Answer::BackendTls
        } else {
            Answer::BadGateway
        }
    }

    /// Its status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Answer::BadRequest(_) => StatusCode::BAD_REQUEST,
            Answer::NoRoute => StatusCode::NOT_FOUND,
            Answer::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Answer::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Answer::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Answer::BadGateway | Answer::BackendTls => StatusCode::BAD_GATEWAY,
            Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Answer::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Whether the client connection must close after it: the request's
    /// framing is in doubt, or its body was left unread.
    #[must_use]
    pub const fn closes(&self) -> bool {
        matches!(
            self,
            Answer::BadRequest(_)
                | Answer::RequestTimeout
                | Answer::TooLarge
                | Answer::HeadTooLarge
        )
    }

    /// The text of its body.
    #[must_use]
    pub fn text(&self) -> String {
        let what = match self {
            Answer::BadRequest(why) => return format!("400 bad request: {why}\n"),
            Answer::NoRoute => "no route for this request",
            Answer::RequestTimeout => "the request did not arrive in time",
            Answer::TooLarge => "the request body is too large",
            Answer::RateLimited(_) => "too many requests; slow down",
            Answer::HeadTooLarge => "the request head is too large",
            Answer::BadGateway => "the backend failed to answer",
            Answer::BackendTls => {
                "TLS to the backend failed (its certificate or protocol; see the balancer's log)"
            }
            Answer::Unavailable => "no backend is available",
            Answer::GatewayTimeout => "the backend did not answer in time",
        };
        format!("{} {what}\n", self.status().as_u16())
    }

    /// The response.
    #[must_use]
    pub fn response(&self) -> Response<Body> {
        let mut r = text(self.status(), self.text());
        let h = r.headers_mut();
        if self.closes() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Answer::RateLimited(secs) = self {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        r
    }
}

/// A plain-text answer: the layer's own, and a route's fixed answer.
#[must_use]
pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Answer;
    use crate::runtime::{
        attempt::Unreachable,
        failure::{Failure, Step},
    };

    #[test]
    fn each_answer_has_its_status_and_framing_errors_close() {
        let cases = [
            (Answer::BadRequest("x"), 400, true),
            (Answer::NoRoute, 404, false),
            (Answer::RequestTimeout, 408, true),
            (Answer::TooLarge, 413, true),
            (Answer::RateLimited(2), 429, false),
            (Answer::HeadTooLarge, 431, true),
            (Answer::BadGateway, 502, false),
            (Answer::BackendTls, 502, false),
            (Answer::Unavailable, 503, false),
            (Answer::GatewayTimeout, 504, false),
        ];
        for (a, status, closes) in cases {
            let r = a.response();
            assert_eq!(r.status().as_u16(), status, "{a:?}");
            assert_eq!(r.headers().get("connection").is_some(), closes, "{a:?}");
            assert!(a.text().starts_with(&status.to_string()), "{a:?}");
        }
        let limited = Answer::RateLimited(3).response();
        assert_eq!(limited.headers()["retry-after"], "3");
    }

    #[test]
    fn backend_failures_become_502_503_or_504() {
        assert_eq!(
            Answer::unreachable(&Unreachable::NoBackend),
            Answer::Unavailable
        );
        let refused = Unreachable::Failed {
            tried: 2,
            last: Failure::Refused(Step::Connect),
        };
        assert_eq!(Answer::unreachable(&refused), Answer::BadGateway);
        let slow = Unreachable::Failed {
            tried: 1,
            last: Failure::Timeout(Duration::from_secs(2)),
        };
        assert_eq!(Answer::unreachable(&slow), Answer::GatewayTimeout);
        let unverified = Unreachable::Failed {
            tried: 1,
            last: Failure::Tls("invalid peer certificate: UnknownIssuer".into()),
        };
        assert_eq!(Answer::unreachable(&unverified), Answer::BackendTls);
    }
}
