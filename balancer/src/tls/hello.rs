//! Reading the server name from the first bytes of a TLS connection
//! without terminating it: the ClientHello is reassembled from handshake
//! records (one ClientHello may span several records, and each record
//! several TCP segments) and its `server_name` extension read. A pure
//! function over bytes, so it can be fuzzed: it says that more bytes are
//! needed, what the name is, or why these bytes are not a ClientHello.

/// The largest ClientHello read. Real ones are well under 2 KiB, 3 KiB
/// with post-quantum key shares; a bound keeps a client from making the
/// proxy buffer without end.
pub const MAX_HELLO: usize = 16 * 1024;

/// TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;
/// Handshake message header: type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
/// The largest record plaintext a peer may send (RFC 8446, 5.1).
const MAX_RECORD: usize = 16 * 1024;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
/// The longest DNS name.
const MAX_NAME: usize = 253;

/// What the bytes received so far say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// A valid beginning: read more.
    Incomplete,
    /// A whole ClientHello, with the server name it asks for, lowercase
    /// and without a trailing dot (`None`: no SNI, as from a client that
    /// connects by address).
    Complete(Option<String>),
}

/// Why bytes are not a ClientHello balancer can route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first record is not a TLS handshake record: not TLS at all.
    #[error("not TLS (the first bytes are no TLS handshake record)")]
    NotTls,
    /// A handshake message other than a ClientHello came first.
    #[error("the first handshake message is type {0}, not a ClientHello")]
    NotClientHello(u8),
    /// Longer than [`MAX_HELLO`].
    #[error("ClientHello of {0} bytes exceeds {MAX_HELLO}")]
    TooLarge(usize),
    /// The ClientHello breaks the format.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

/// Reads the ClientHello at the start of `bytes`, a connection's first
/// bytes.
pub fn scan(bytes: &[u8]) -> Result<Scanned, HelloError> {
    let mut message: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        let record = &bytes[at..];
        // Reject what is not TLS from its first bytes, so a plaintext
        // client is closed without waiting for a whole record.
        if let Some(&kind) = record.first()
            && kind != CONTENT_HANDSHAKE
        {
            return Err(if at == 0 {
                HelloError::NotTls
            } else {
                HelloError::Malformed("a record other than handshake inside the ClientHello")
            });
        }
        if record.len() > 1 && record[1] != 3 {
            return Err(if at == 0 {
                HelloError::NotTls
            } else {
                HelloError::Malformed("a record of another protocol version")
            });
        }
        if record.len() < RECORD_HEADER {
            return Ok(Scanned::Incomplete);
        }
        let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
        if len == 0 || len > MAX_RECORD {
            return Err(HelloError::Malformed("record length"));
        }
        let body = &record[RECORD_HEADER..];
        let available = &body[..body.len().min(len)];
        message.extend_from_slice(available);
        if let Some(done) = whole(&message)? {
            return client_hello(done).map(Scanned::Complete);
        }
        if available.len() < len {
            return Ok(Scanned::Incomplete);
        }
        at += RECORD_HEADER + len;
    }
}

/// The ClientHello body once `message` holds all of it.
fn whole(message: &[u8]) -> Result<Option<&[u8]>, HelloError> {
    if let Some(&kind) = message.first()
        && kind != CLIENT_HELLO
    {
        return Err(HelloError::NotClientHello(kind));
    }
    if message.len() < HANDSHAKE_HEADER {
        return Ok(None);
    }
    let len =
        usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]);
    if len > MAX_HELLO {
        return Err(HelloError::TooLarge(len));
    }
    Ok(message.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + len))
}

/// The server name of a ClientHello body.
fn client_hello(body: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(body);
    r.skip(2 + 32, "version and random")?;
    let session = r.u8("session id length")?;
    r.skip(usize::from(session), "session id")?;
    let suites = r.u16("cipher suites length")?;
    r.skip(usize::from(suites), "cipher suites")?;
    let compression = r.u8("compression methods length")?;
    r.skip(usize::from(compression), "compression methods")?;
    if r.0.is_empty() {
        // A hello without extensions (TLS 1.2 allows it) has no SNI.
        return Ok(None);
    }
    let len = r.u16("extensions length")?;
    let mut extensions = Reader(r.take(usize::from(len), "extensions")?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16("extension type")?;
        let len = extensions.u16("extension length")?;
        let data = extensions.take(usize::from(len), "extension")?;
        if kind == EXT_SERVER_NAME {
            return server_name(data);
        }
    }
    Ok(None)
}

/// The host name of a `server_name` extension (RFC 6066, 3).
fn server_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(data);
    let len = r.u16("server name list length")?;
    let mut list = Reader(r.take(usize::from(len), "server name list")?);
    while !list.0.is_empty() {
        let kind = list.u8("server name type")?;
        let len = list.u16("server name length")?;
        let name = list.take(usize::from(len), "server name")?;
        if kind == NAME_TYPE_HOST {
            return host(name).map(Some);
        }
    }
    Ok(None)
}

/// A DNS host name as routes compare it.
fn host(name: &[u8]) -> Result<String, HelloError> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    // No empty label either: `a..b`, `.a` and `a..` (one dot is taken off
    // above) are no host names (found by the client_hello fuzz target: a
    // name ending in two dots kept one).
    let empty_label = name.split(|b| *b == b'.').any(<[u8]>::is_empty);
    if name.is_empty() || name.len() > MAX_NAME || !name.iter().all(ok) || empty_label {
        return Err(HelloError::Malformed("server name is not a DNS host name"));
    }
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Bounds-checked reading from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), HelloError> {
        self.take(n, what).map(drop)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
#[path = "hello/tests.rs"]
mod tests;
