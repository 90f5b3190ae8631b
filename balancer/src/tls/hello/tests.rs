use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, RootCertStore, pki_types::ServerName};

use super::{HelloError, MAX_HELLO, Scanned, scan};

/// The first flight of a real rustls client connecting to `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("hello");
    out
}

/// `hello` (one record) re-cut into records of at most `size` bytes.
fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
    let message = &hello[5..];
    let mut out = Vec::new();
    for piece in message.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(piece.len()).expect("size").to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

#[test]
fn reads_the_server_name_of_a_real_client_hello() {
    let hello = client_hello("Api.Example.Test");
    assert_eq!(
        scan(&hello),
        Ok(Scanned::Complete(Some("api.example.test".to_owned())))
    );
    // Bytes after the hello (a pipelined record) change nothing.
    let mut more = hello.clone();
    more.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
    assert_eq!(
        scan(&more),
        Ok(Scanned::Complete(Some("api.example.test".to_owned())))
    );
}

#[test]
fn every_prefix_asks_for_more() {
    let hello = client_hello("a.example.test");
    for n in 0..hello.len() {
        assert_eq!(scan(&hello[..n]), Ok(Scanned::Incomplete), "prefix of {n}");
    }
}

#[test]
fn a_hello_over_several_records_is_reassembled() {
    let hello = client_hello("b.example.test");
    for size in [1, 7, 100] {
        let cut = refragment(&hello, size);
        assert_eq!(
            scan(&cut),
            Ok(Scanned::Complete(Some("b.example.test".to_owned()))),
            "records of {size}"
        );
        assert_eq!(scan(&cut[..cut.len() - 1]), Ok(Scanned::Incomplete));
    }
}

#[test]
fn a_client_connecting_by_address_sends_no_name() {
    assert_eq!(
        scan(&client_hello("198.18.0.1")),
        Ok(Scanned::Complete(None))
    );
}

#[test]
fn plaintext_is_refused_from_its_first_byte() {
    assert_eq!(scan(b"G"), Err(HelloError::NotTls));
    assert_eq!(scan(b"GET / HTTP/1.1\r\n\r\n"), Err(HelloError::NotTls));
    assert_eq!(scan(b"SSH-2.0-x\r\n"), Err(HelloError::NotTls));
    // A handshake type byte, then no TLS version.
    assert_eq!(scan(&[22, 0]), Err(HelloError::NotTls));
}

#[test]
fn other_handshake_messages_and_sizes_are_refused() {
    assert_eq!(
        scan(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
        Err(HelloError::NotClientHello(2))
    );
    assert_eq!(
        scan(&[22, 3, 1, 0, 4, 1, 0x01, 0, 0]),
        Err(HelloError::TooLarge(0x1_0000))
    );
    const { assert!(MAX_HELLO < 0x1_0000) };
    assert_eq!(
        scan(&[22, 3, 1, 0, 0]),
        Err(HelloError::Malformed("record length"))
    );
    assert_eq!(
        scan(&[22, 3, 1, 0x40, 1]),
        Err(HelloError::Malformed("record length"))
    );
    // An alert record between two halves of a hello.
    let hello = client_hello("c.example.test");
    let mut cut = refragment(&hello, 50);
    cut[55] = 21;
    assert!(matches!(scan(&cut), Err(HelloError::Malformed(_))));
}

#[test]
fn inner_lengths_that_overrun_are_malformed() {
    let hello = client_hello("d.example.test");
    // Shorten the handshake message and its record by one byte: the last
    // extension now claims a byte the hello does not have.
    let mut short = hello[..hello.len() - 1].to_vec();
    let record = u16::from_be_bytes([short[3], short[4]]) - 1;
    short[3..5].copy_from_slice(&record.to_be_bytes());
    let len =
        (usize::from(short[6]) << 16 | usize::from(short[7]) << 8 | usize::from(short[8])) - 1;
    short[6] = (len >> 16) as u8;
    short[7] = (len >> 8) as u8;
    short[8] = len as u8;
    assert!(
        matches!(scan(&short), Err(HelloError::Malformed(_))),
        "{:?}",
        scan(&short)
    );
}

#[test]
fn a_name_that_is_no_host_name_is_malformed() {
    let hello = client_hello("e.example.test");
    let at = hello
        .windows(14)
        .position(|w| w == b"e.example.test")
        .expect("name in hello");
    let mut bad = hello.clone();
    bad[at + 1] = b'/';
    assert_eq!(
        scan(&bad),
        Err(HelloError::Malformed("server name is not a DNS host name"))
    );
    // A trailing dot is the same name.
    let mut dotted = hello.clone();
    dotted[at + 13] = b'.';
    assert_eq!(
        scan(&dotted),
        Ok(Scanned::Complete(Some("e.example.tes".to_owned())))
    );
    // Empty labels are not (the fuzz target's find: two trailing dots).
    for (i, b) in [(12, b'.'), (2, b'.'), (0, b'.')] {
        let mut empty = hello.clone();
        empty[at + i] = b;
        if i == 12 {
            empty[at + 13] = b'.';
        }
        assert_eq!(
            scan(&empty),
            Err(HelloError::Malformed("server name is not a DNS host name")),
            "{}",
            String::from_utf8_lossy(&empty[at..at + 14])
        );
    }
}
