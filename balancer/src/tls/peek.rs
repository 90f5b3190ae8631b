//! Taking a connection's ClientHello off the socket to learn its server
//! name without terminating TLS. The bytes are read, not left in the
//! socket: the caller sends them to the backend it picks before it
//! splices the rest, so the backend sees the client's stream unchanged.
//! Reading (unlike peeking) makes each wait end on new bytes, so a
//! ClientHello that arrives a byte at a time costs no busy loop.

use std::{io, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::hello::{HelloError, MAX_HELLO, Scanned, scan};

/// The most bytes read while looking for a whole ClientHello: room for
/// the largest one in records as small as a peer may cut them.
pub const MAX_READ: usize = 4 * MAX_HELLO;

/// Bytes taken per read.
const CHUNK: usize = 4096;

/// A ClientHello read off a connection.
#[derive(Debug)]
pub struct Hello {
    /// Every byte read, the ClientHello first: the backend gets them all.
    pub bytes: Vec<u8>,
    /// The server name it asks for, lowercase.
    pub sni: Option<String>,
}

/// Why no ClientHello was read.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    /// The bytes are not a ClientHello.
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// The client closed before a whole ClientHello.
    #[error("the client closed before a whole ClientHello")]
    Closed,
    /// No whole ClientHello within the allowed time.
    #[error("no whole ClientHello within {0:?}")]
    Timeout(Duration),
    /// No whole ClientHello within [`MAX_READ`] bytes.
    #[error("no whole ClientHello within {MAX_READ} bytes")]
    TooLong,
    /// The socket failed.
    #[error("reading the ClientHello: {0}")]
    Io(#[from] io::Error),
}

/// Reads from `stream` until the ClientHello is whole, for at most
/// `timeout`.
pub async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Hello, PeekError> {
    let mut bytes = Vec::with_capacity(2048);
    let reading = async {
        loop {
            let room = MAX_READ - bytes.len();
            if room == 0 {
                return Err(PeekError::TooLong);
            }
            // Straight into the vector: a buffer on the stack would live in
            // every proxied connection's future (routed or not), which the
            // runtime copies when it spawns and finishes the task.
            bytes.reserve(room.min(CHUNK));
            let n = (&mut *stream)
                .take(room as u64)
                .read_buf(&mut bytes)
                .await?;
            if n == 0 {
                return Err(PeekError::Closed);
            }
            if let Scanned::Complete(sni) = scan(&bytes)? {
                return Ok(sni);
            }
        }
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(sni)) => Ok(Hello { bytes, sni }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PeekError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt as _;

    use super::{PeekError, read_hello};
    use crate::tls::hello::HelloError;

    /// A minimal ClientHello record naming `name`, as the parser reads it.
    fn hello(name: &str) -> Vec<u8> {
        let n = u16::try_from(name.len()).expect("short");
        let mut sni = Vec::new();
        sni.extend_from_slice(&(n + 3).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&n.to_be_bytes());
        sni.extend_from_slice(name.as_bytes());
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&u16::try_from(sni.len()).expect("short").to_be_bytes());
        ext.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&u16::try_from(ext.len()).expect("short").to_be_bytes());
        body.extend_from_slice(&ext);
        let len = u32::try_from(body.len()).expect("short").to_be_bytes();
        let mut message = vec![1, len[1], len[2], len[3]];
        message.extend_from_slice(&body);
        let mut record = vec![22, 3, 1];
        record.extend_from_slice(&u16::try_from(message.len()).expect("short").to_be_bytes());
        record.extend_from_slice(&message);
        record
    }

    #[tokio::test]
    async fn a_hello_sent_a_byte_at_a_time_is_read_whole_with_what_follows() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut sent = hello("x.example.test");
        sent.extend_from_slice(b"early");
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for b in sent {
                    client.write_all(&[b]).await.expect("write");
                    tokio::task::yield_now().await;
                }
                client
            })
        };
        let got = read_hello(&mut server, Duration::from_secs(5))
            .await
            .expect("hello");
        assert_eq!(got.sni.as_deref(), Some("x.example.test"));
        // Everything read so far is kept for the backend, in order.
        assert!(sent.starts_with(&got.bytes));
        assert!(got.bytes.len() >= sent.len() - 5);
        drop(writer.await);
    }

    #[tokio::test]
    async fn plaintext_a_close_and_silence_are_errors() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let e = read_hello(&mut server, Duration::from_secs(5)).await;
        assert!(
            matches!(e, Err(PeekError::Hello(HelloError::NotTls))),
            "{e:?}"
        );

        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(&hello("y.example.test")[..20])
            .await
            .expect("write");
        drop(client);
        let e = read_hello(&mut server, Duration::from_secs(5)).await;
        assert!(matches!(e, Err(PeekError::Closed)), "{e:?}");

        let (_client, mut server) = tokio::io::duplex(64);
        let e = read_hello(&mut server, Duration::from_millis(50)).await;
        assert!(matches!(e, Err(PeekError::Timeout(_))), "{e:?}");
    }
}
