//! Fuzz harnesses: one function per target, called by the cargo-fuzz
//! targets in `fuzz/` and, over the committed corpora, by the replay test
//! that `cargo xtask test` runs. Each feeds arbitrary bytes to one input
//! parser and checks what that parser promises; a broken promise panics,
//! which is how the fuzzer reports it.
mod routes;
#[cfg(any(test, feature = "testkit"))]
pub mod xdp;

pub use routes::route_table;
#[cfg(any(test, feature = "testkit"))]
pub use xdp::xdp_frame;

use crate::{
    admin::routes::route,
    config::{self, ConfigError},
    proxy_protocol::{
        V1_MAX, V2_MAX,
        parse::{Parsed, parse},
    },
    tls::hello::{MAX_HELLO, Scanned, scan},
};

/// A harness: one input, checked.
pub type Harness = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` know them.
pub const TARGETS: [(&str, Harness); 5] = [
    ("config", config),
    ("proxy_header", proxy_header),
    ("client_hello", client_hello),
    ("admin_route", admin_route),
    ("route_table", route_table),
];

/// A config file's bytes: loaded or refused, and every refusal names the
/// file and a position inside it.
pub fn config(data: &[u8]) {
    match config::from_bytes(data.to_vec(), "fuzz.yaml") {
        Ok(_) => {}
        Err(ConfigError::Invalid(issues)) => {
            assert!(!issues.is_empty(), "a refusal without an issue");
            let lines = yaml_lines(data);
            for i in &issues {
                assert_eq!(i.file, "fuzz.yaml");
                assert!(i.line >= 1 && i.column >= 1, "{i}");
                // The end of the file may be one line past its last byte.
                assert!(i.line <= lines + 1, "{i}: past the file's {lines} lines");
            }
        }
        Err(e @ ConfigError::Read { .. }) => panic!("bytes cannot fail to read: {e}"),
    }
}

/// Lines as YAML counts them: LF, CRLF and a CR alone each end one (the
/// fuzzer's first find in `config`: files of bare CRs have more lines than
/// LFs).
fn yaml_lines(data: &[u8]) -> usize {
    let mut lines = 1;
    let mut bytes = data.iter().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => lines += 1,
            b'\r' if bytes.peek() != Some(&&b'\n') => lines += 1,
            _ => {}
        }
    }
    lines
}

/// A connection's first bytes as a PROXY header: a header never claims
/// more bytes than it was given, reads the same from exactly its own
/// bytes, and every shorter beginning of it asks for more.
pub fn proxy_header(data: &[u8]) {
    match parse(data) {
        Ok(Parsed::Complete { header, len }) => {
            assert!(len <= data.len() && len <= V1_MAX.max(V2_MAX));
            assert_eq!(
                parse(&data[..len]),
                Ok(Parsed::Complete {
                    header: header.clone(),
                    len
                })
            );
            for cut in 1..len {
                assert_eq!(
                    parse(&data[..cut]),
                    Ok(Parsed::Incomplete),
                    "{cut} of {len} bytes"
                );
            }
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < V1_MAX.max(V2_MAX), "{} bytes", data.len()),
        Err(_) => {}
    }
}

/// A connection's first bytes as a TLS ClientHello: the name found is a
/// lowercase DNS name without a trailing dot, and a hello still being
/// read stays within what [`MAX_HELLO`] allows.
pub fn client_hello(data: &[u8]) {
    match scan(data) {
        Ok(Scanned::Complete(Some(name))) => {
            assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
            assert_eq!(name, name.to_ascii_lowercase());
            assert!(!name.ends_with('.'), "{name:?}");
        }
        // Even in one-byte records (five bytes of header each), a
        // ClientHello that may still become whole is bounded.
        Ok(Scanned::Incomplete) => assert!(data.len() <= 6 * MAX_HELLO, "{}", data.len()),
        Ok(Scanned::Complete(None)) | Err(_) => {}
    }
}

/// An admin request's method (first line) and path (the rest): a route or
/// an error with a status the API can send.
pub fn admin_route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, path) = text.split_once('\n').unwrap_or((text, "/"));
    if let Err(e) = route(method, path) {
        let code = e.status();
        assert!(
            (400..500).contains(&code),
            "status {code} for {method} {path}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TARGETS;

    /// Every committed corpus entry, through its target: what the fuzzer
    /// found once (and what it started from) keeps passing.
    #[test]
    fn every_committed_corpus_entry_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        // The XDP target needs the packet tests' set-up, so it is not in
        // `TARGETS` for every build.
        let xdp: (&str, super::Harness) = ("xdp_frame", super::xdp_frame);
        for (name, target) in TARGETS.into_iter().chain([xdp]) {
            let dir = root.join(name);
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            assert!(!entries.is_empty(), "no corpus for {name}");
            for path in entries {
                let data = std::fs::read(&path).expect("read");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            }
        }
    }
}
