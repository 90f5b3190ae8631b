//! Malformed and smuggling requests, sent as raw bytes (RFC 9112 framing
//! rules; cases after smuggler's mutations and http-garden's proxy
//! findings), against a backend that records every request it parses.
//! Each is answered with the right status or forwarded normalised, and the
//! backend never parses more requests than the client sent.

use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::SocketAddr,
    time::Duration,
};

use balancer_tests::{
    Topology,
    client::connect,
    echo::Echo,
    scripts,
    topology::{VIP4, backend_addr},
};

/// What a case must get.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// This status from the balancer, and nothing reaches the backend.
    Refused(u16),
    /// Forwarded: a 200 from the backend for each of this many requests.
    Forwarded(usize),
    /// Refused with some 4xx, or the connection closed without a 2xx;
    /// nothing complete reaches the backend.
    NotForwarded,
}

/// `(name, raw bytes, what it must get)`.
type Case = (&'static str, Vec<u8>, Want);

#[expect(clippy::too_many_lines, reason = "a data table, one row per case")]
fn cases() -> Vec<Case> {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..10_000 {
        let _ = write!(many, "X-{i}: v\r\n");
    }
    many.push_str("\r\n");
    let r = |s: &str| s.as_bytes().to_vec();
    vec![
        (
            "plain GET",
            r("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Want::Forwarded(1),
        ),
        (
            "CL.TE: TE wins, the rest is not a request",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            ),
            Want::Forwarded(1),
        ),
        (
            "TE.CL: TE wins",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            ),
            Want::Forwarded(1),
        ),
        (
            "duplicate differing Content-Length",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            Want::Refused(400),
        ),
        (
            "Content-Length list with differing values",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"),
            Want::Refused(400),
        ),
        (
            "negative Content-Length",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "Content-Length with a plus",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
            Want::Refused(400),
        ),
        (
            "Content-Length not a number",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "Content-Length in hex",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"),
            Want::Refused(400),
        ),
        (
            "chunked then identity",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            ),
            Want::Refused(400),
        ),
        (
            "a final coding other than chunked",
            r("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "two TE headers, the last not chunked",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            ),
            Want::Refused(400),
        ),
        (
            "TE xchunked",
            r("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "TE on HTTP/1.0",
            r("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "TE and CL on HTTP/1.0",
            r(
                "POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            Want::Refused(400),
        ),
        (
            "chunked in capitals is chunked",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            ),
            Want::Forwarded(1),
        ),
        (
            "chunk extensions",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
            ),
            Want::Forwarded(1),
        ),
        (
            "chunk size overflow",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
            ),
            Want::NotForwarded,
        ),
        (
            "chunk size not hex",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n",
            ),
            Want::NotForwarded,
        ),
        (
            "chunk longer than its size",
            r(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            ),
            Want::NotForwarded,
        ),
        (
            "obs-fold",
            r("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "bare CR in a value",
            r("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "NUL in a value",
            r("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "NUL in the target",
            r("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "space before the colon",
            r("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "space in a header name",
            r("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "bad header name character",
            r("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "space in the target",
            r("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "bad method",
            r("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "unknown version",
            r("GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "HTTP/1.1 without Host",
            r("GET / HTTP/1.1\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "two Host headers",
            r("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "two equal Host headers",
            r("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            Want::Refused(400),
        ),
        (
            "HTTP/1.0 without Host",
            r("GET / HTTP/1.0\r\n\r\n"),
            Want::Forwarded(1),
        ),
        (
            "CONNECT",
            r("CONNECT 198.18.1.11:22 HTTP/1.1\r\nHost: 198.18.1.11:22\r\n\r\n"),
            Want::Refused(400),
        ),
        ("oversize head", big.into_bytes(), Want::Refused(431)),
        ("10,000 headers", many.into_bytes(), Want::Refused(431)),
        (
            "bare LF line ends, forwarded with CRLF",
            r("GET / HTTP/1.1\nHost: a\n\n"),
            Want::Forwarded(1),
        ),
        (
            "absolute form with another Host",
            r("GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            Want::Forwarded(1),
        ),
        (
            "two pipelined requests",
            r("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Want::Forwarded(2),
        ),
        (
            "Upgrade to h2c is not passed on",
            r(
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            ),
            Want::Forwarded(1),
        ),
        (
            "Connection naming a header strips it",
            r("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Internal\r\nX-Internal: 1\r\n\r\n"),
            Want::Forwarded(1),
        ),
        (
            "Content-Length and a shorter body",
            r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello"),
            Want::NotForwarded,
        ),
    ]
}

/// Sends `raw` on a new connection and reads until `expect` whole answers
/// have arrived, the balancer closes, or it goes quiet. The client never
/// half-closes: like nginx, the balancer takes that as the client leaving.
fn send(vip: SocketAddr, raw: &[u8], expect: usize) -> String {
    let mut s = connect(vip, None).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    // A peer that refuses early may close while we still write.
    let _ = s.write_all(raw);
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while std::time::Instant::now() < deadline && complete(&out) < expect.max(1) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `text`.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// How many whole answers (head and `Content-Length` body) `buf` holds.
fn complete(buf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(buf);
    let mut rest: &str = &text;
    let mut n = 0;
    while let Some((head, after)) = rest.split_once("\r\n\r\n") {
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if after.len() < length {
            break;
        }
        n += 1;
        rest = &after[length..];
    }
    n
}

#[test]
fn malformed_and_smuggling_requests_are_refused_or_forwarded_normalised() {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let yaml = "version: 1
shutdown_grace: 2s
listeners:
  - name: web
    address: 198.18.0.10:80
    protocol: tcp
    mode: http
    pool: echo
    http: { header_timeout: 2s, body_timeout: 1s }
pools:
  - { name: echo, backends: [{ address: \"198.18.1.11:8080\" }] }
";
    let _lb = t.start_balancer(yaml, 1);
    let vip: SocketAddr = (VIP4, 80).into();
    let cases = cases();
    assert!(cases.len() >= 40, "keep at least 40 hostile cases");
    let mut failures = Vec::new();
    for (name, raw, want) in cases {
        let before = echo.requests();
        let heads_before = echo.heads().len();
        let expect = match want {
            Want::Forwarded(n) => n,
            _ => 1,
        };
        let answer = t.client.enter(|| send(vip, &raw, expect));
        let got = statuses(&answer);
        let reached = echo.requests() - before;
        let ok = match want {
            Want::Refused(code) => got.first() == Some(&code) && reached == 0,
            Want::Forwarded(n) => got == vec![200; n] && reached == n,
            Want::NotForwarded => got.iter().all(|c| *c >= 400) && reached == 0,
        };
        if !ok {
            failures.push(format!("{name}: want {want:?}, got statuses {got:?} with {reached} requests at the backend: {:?}", answer.chars().take(200).collect::<String>()));
        }
        // Whatever was forwarded went out in canonical framing.
        for head in &echo.heads()[heads_before..] {
            assert!(
                head.ends_with("\r\n\r\n") && !head.contains("\r\n\r\n\r\n"),
                "{name}: {head:?}"
            );
            let lower = head.to_ascii_lowercase();
            assert!(
                !(lower.contains("content-length") && lower.contains("transfer-encoding")),
                "{name}: both framings forwarded: {head}"
            );
            assert!(
                !lower.contains("upgrade: h2c") && !lower.contains("x-internal"),
                "{name}: {head}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let bare = echo
        .heads()
        .into_iter()
        .find(|h| {
            h.starts_with("GET / HTTP/1.1\r\nx-forwarded-for")
                || (h.starts_with("GET / ") && !h.to_ascii_lowercase().contains("host: a"))
        })
        .expect("the HTTP/1.0 request without Host");
    assert!(
        bare.to_ascii_lowercase()
            .contains("host: 198.18.0.10:80\r\n"),
        "a Host for the backend: {bare}"
    );
    let absolute = echo
        .heads()
        .into_iter()
        .find(|h| h.starts_with("GET /x "))
        .expect("the absolute-form request");
    assert!(
        absolute.to_ascii_lowercase().contains("host: b.test\r\n"),
        "the URI's authority replaces Host: {absolute}"
    );
}

/// HTTP/2 requests that are malformed for an HTTP/1 backend (RFC 9113,
/// 8.1.1 and 8.2.2): a body that disagrees with its `content-length`,
/// connection-specific headers, `te` other than `trailers`, an uppercase
/// field name. Each is refused (the stream reset, or a 4xx) and the backend
/// sees none of them.
#[test]
fn malformed_http2_requests_are_refused_before_the_backend() {
    let t = Topology::new(1);
    let echo = Echo::start(&t.backends[0], backend_addr(0, 8080, false), "echo");
    let yaml = "version: 1
shutdown_grace: 2s
listeners:
  - { name: web, address: 198.18.0.10:80, protocol: tcp, mode: http, pool: echo }
pools:
  - { name: echo, backends: [{ address: \"198.18.1.11:8080\" }] }
";
    let _lb = t.start_balancer(yaml, 1);
    for kind in [
        "cl_mismatch",
        "connection_header",
        "te_gzip",
        "uppercase_name",
    ] {
        let run = scripts::command(&t.client, "h2_malformed.py", &["198.18.0.10", "80", kind])
            .output()
            .expect("python3");
        assert!(
            run.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let out = String::from_utf8_lossy(&run.stdout);
        let refused = out.starts_with("reset") || out.starts_with("status 4");
        assert!(refused, "{kind}: {out}");
    }
    // A stream reset mid-body may leave a partial request at the backend,
    // never a complete one.
    assert_eq!(echo.requests(), 0, "{:?}", echo.heads());
}
