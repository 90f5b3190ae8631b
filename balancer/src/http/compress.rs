//! Compression of answers on routes with `compress: true`: brotli or gzip,
//! whichever the client prefers among those it accepts (brotli on a tie),
//! for text-like answers the backend did not compress itself. The body is
//! compressed as it streams, never buffered whole.

use async_compression::{
    Level,
    tokio::bufread::{BrotliEncoder, GzipEncoder},
};
use futures_util::TryStreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use hyper::body::Frame;
use tokio_util::io::{ReaderStream, StreamReader};

use super::body::Body;

/// Answers smaller than this are not worth compressing.
const MIN_LENGTH: u64 = 256;

/// An encoding the layer can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
}

impl Encoding {
    const fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// The encoding to use for a client that sent `accept` (`Accept-Encoding`),
/// by its quality values; `None` when it accepts neither.
#[must_use]
pub fn choose(accept: &HeaderMap) -> Option<Encoding> {
    let mut best: Option<(Encoding, u32)> = None;
    for item in accept
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        // Thousandths, to compare without floats.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "q is clamped to 0..=1"
        )]
        let q = (q.clamp(0.0, 1.0) * 1000.0) as u32;
        let enc = match name.as_str() {
            "br" => Encoding::Brotli,
            "gzip" | "x-gzip" => Encoding::Gzip,
            _ => continue,
        };
        if q == 0 {
            continue;
        }
        let better =
            best.is_none_or(|(b, bq)| q > bq || (q == bq && enc == Encoding::Brotli && b != enc));
        if better {
            best = Some((enc, q));
        }
    }
    best.map(|(e, _)| e)
}

/// Whether an answer to a `method` request may be compressed: a success
/// with a body, text-like, not already encoded, not tiny.
#[must_use]
pub fn worth_it(method: &Method, response: &Response<Body>) -> bool {
    let h = response.headers();
    let status = response.status();
    let textual = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| {
            t.starts_with("text/")
                || matches!(
                    t.as_str(),
                    "application/json"
                        | "application/javascript"
                        | "application/xml"
                        | "application/xhtml+xml"
                        | "image/svg+xml"
                )
        });
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    *method != Method::HEAD
        && status.is_success()
        && status != StatusCode::NO_CONTENT
        && textual
        && !h.contains_key(header::CONTENT_ENCODING)
        && !h.contains_key(header::CONTENT_RANGE)
        && length.is_none_or(|n| n >= MIN_LENGTH)
}

/// `response` with its body compressed by `enc`, streaming.
#[must_use]
pub fn compress(response: Response<Body>, enc: Encoding) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .map_err(std::io::Error::other);
    let reader = StreamReader::new(bytes);
    let encoded: Body = match enc {
        Encoding::Brotli => framed(ReaderStream::new(BrotliEncoder::with_quality(
            reader,
            Level::Precise(4),
        ))),
        Encoding::Gzip => framed(ReaderStream::new(GzipEncoder::with_quality(
            reader,
            Level::Default,
        ))),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::ACCEPT_RANGES);
    parts.headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.token()),
    );
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    Response::from_parts(parts, encoded)
}

fn framed(
    s: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
) -> Body {
    StreamBody::new(s.map_ok(Frame::data).map_err(Into::into)).boxed()
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Method, Response, header};
    use http_body_util::BodyExt as _;

    use super::{Encoding, choose, compress, worth_it};
    use crate::http::body::full;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(v).expect("value"),
        );
        h
    }

    #[test]
    fn the_client_s_preference_wins_and_brotli_breaks_ties() {
        assert_eq!(choose(&accept("gzip, deflate, br")), Some(Encoding::Brotli));
        assert_eq!(choose(&accept("gzip")), Some(Encoding::Gzip));
        assert_eq!(
            choose(&accept("br;q=0.5, gzip;q=0.9")),
            Some(Encoding::Gzip)
        );
        assert_eq!(choose(&accept("br;q=0, gzip;q=0")), None);
        assert_eq!(choose(&accept("identity, deflate")), None);
        assert_eq!(choose(&HeaderMap::new()), None);
    }

    fn text(len: usize, content_type: &str) -> Response<crate::http::body::Body> {
        let mut r = Response::new(full("a".repeat(len)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("ct"),
        );
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    }

    #[test]
    fn only_text_successes_without_an_encoding_are_compressed() {
        assert!(worth_it(
            &Method::GET,
            &text(1000, "text/html; charset=utf-8")
        ));
        assert!(worth_it(&Method::GET, &text(1000, "application/json")));
        assert!(!worth_it(&Method::GET, &text(1000, "image/png")));
        assert!(
            !worth_it(&Method::GET, &text(10, "text/plain")),
            "too small"
        );
        assert!(!worth_it(&Method::HEAD, &text(1000, "text/plain")));
        let mut done = text(1000, "text/plain");
        done.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!worth_it(&Method::GET, &done), "already encoded");
    }

    #[tokio::test]
    async fn a_compressed_body_inflates_to_the_original() {
        use std::io::Read as _;
        let r = compress(text(5000, "text/plain"), Encoding::Gzip);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(!r.headers().contains_key(header::CONTENT_LENGTH));
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out, "a".repeat(5000));
    }
}
