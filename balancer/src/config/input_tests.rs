//! The file as bytes, before YAML: size, encoding and names too long to
//! show, each refused with the file and a `line:column`.

use std::{fmt::Write as _, io::Write as _};

use super::{ConfigError, limits, load, parse};

/// The issues of loading `bytes` from a file.
fn load_bytes(bytes: &[u8]) -> Vec<super::Issue> {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write");
    match load(f.path()) {
        Err(ConfigError::Invalid(issues)) => issues,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn a_byte_that_is_not_utf8_is_located() {
    // Line 3, after four characters (one of them two bytes long).
    let bytes = b"version: 1\nlisteners:\n  - n\xc3\xa9m\xff: web\n";
    let issues = load_bytes(bytes);
    assert_eq!(issues.len(), 1, "{issues:?}");
    let i = &issues[0];
    assert_eq!((i.line, i.column), (3, 8), "{i}");
    assert!(
        i.message.contains("0xff") && i.message.contains("UTF-8"),
        "{i}"
    );
    assert!(i.to_string().contains(":3:8: "), "{i}");
}

#[test]
fn a_file_past_the_size_limit_is_refused_unread() {
    let size = usize::try_from(limits::MAX_FILE_BYTES).expect("fits") + 1;
    let mut bytes = b"version: 1\n#".to_vec();
    bytes.resize(size, b'x');
    let issues = load_bytes(&bytes);
    assert_eq!((issues[0].line, issues[0].column), (1, 1));
    assert!(
        issues[0].message.contains("larger than 16 MiB"),
        "{:?}",
        issues[0]
    );
}

#[test]
fn a_ten_megabyte_name_is_refused_without_being_echoed() {
    let long = "n".repeat(10 << 20);
    let text = format!(
        "version: 1\nlisteners:\n  - name: {long}\n    address: 198.18.0.10:80\n    protocol: tcp\n    pool: web\npools:\n  - name: web\n    backends:\n      - address: 198.18.1.11:80\n"
    );
    let Err(ConfigError::Invalid(issues)) = parse(&text, "big.yaml") else {
        panic!("a 10 MB name was accepted");
    };
    let i = issues
        .iter()
        .find(|i| i.field == "listeners[0].name")
        .unwrap_or_else(|| panic!("{issues:?}"));
    assert_eq!(i.line, 3, "{i}");
    assert!(i.message.contains("names may be at most 128"), "{i}");
    assert!(
        i.message.len() < 200,
        "the message echoes the name: {} bytes",
        i.message.len()
    );
}

#[test]
fn a_document_nested_past_the_parser_limit_is_located() {
    let deep = format!(
        "version: 1\nlisteners: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let Err(ConfigError::Invalid(issues)) = parse(&deep, "deep.yaml") else {
        panic!("accepted");
    };
    assert!(issues[0].line >= 1 && issues[0].column >= 1);
    assert!(
        issues[0].to_string().starts_with("deep.yaml:2:"),
        "{}",
        issues[0]
    );
}

#[test]
fn a_backend_list_multiplied_by_aliases_is_refused_at_the_alias_that_passes_the_bound() {
    // 3,000 backends (9,001 nodes: the list, and a map, a key and a value
    // each) written once, then named by 120 pools: the 112th copy passes a
    // million nodes.
    let mut text = String::from("version: 1\nshared: &shared\n");
    for i in 0..3000 {
        let _ = writeln!(
            text,
            "  - {{ address: \"198.18.{}.{}:80\" }}",
            i / 250,
            i % 250 + 1
        );
    }
    text.push_str("pools:\n");
    for p in 0..120 {
        let _ = writeln!(text, "  - {{ name: p{p}, backends: *shared }}");
    }
    let issues = match parse(&text, "big.yaml") {
        Err(ConfigError::Invalid(issues)) => issues,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let i = &issues[0];
    // Lines 1 + 1 + 3,000 + 1, then the pools: the 112th (`p111`) is line
    // 3,115, its alias at column 29.
    assert_eq!((i.line, i.column), (3115, 29), "{i}");
    assert!(i.message.contains("aliases"), "{i}");
    assert!(i.to_string().starts_with("big.yaml:3115:29: "), "{i}");
}
