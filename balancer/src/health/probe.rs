//! One active check against one backend: a TCP connect, an HTTP request
//! whose status must fall in a range, or a UDP datagram that must be
//! answered. Each is bounded by the check's timeout as a whole, so a backend
//! that accepts and then hangs fails like one that never answers.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    config::model::{HealthCheck, HttpProbe, Probe, UdpProbe},
    proxy::{connect_tcp, connect_udp},
    runtime::failure::{Failure, Step},
    tls::upstream::Connector,
};

/// The most of an HTTP answer read to find its status line.
const MAX_STATUS_LINE: usize = 1024;
/// The largest UDP answer taken in.
const MAX_DATAGRAM: usize = 2048;

/// Runs `check` against `backend` (over `tls` when the pool has it): how
/// long it took, or why it failed.
pub async fn probe(
    check: &HealthCheck,
    backend: SocketAddr,
    tls: Option<&Connector>,
) -> Result<Duration, Failure> {
    let start = Instant::now();
    let work = async {
        match (&check.probe, tls) {
            (Probe::Tcp, None) => connect_tcp(backend, check.timeout).await.map(drop),
            (Probe::Tcp, Some(t)) => {
                let s = connect_tcp(backend, check.timeout).await?;
                t.connect_check(s, backend, check.timeout).await.map(drop)
            }
            (Probe::Http(http_probe), None) => {
                let s = connect_tcp(backend, check.timeout).await?;
                http(http_probe, s, backend).await
            }
            (Probe::Http(http_probe), Some(t)) => {
                let s = connect_tcp(backend, check.timeout).await?;
                let s = t.connect_check(s, backend, check.timeout).await?;
                http(http_probe, s, backend).await
            }
            (Probe::Udp(udp_probe), _) => udp(udp_probe, backend).await,
        }
    };
    match tokio::time::timeout(check.timeout, work).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Failure::Timeout(check.timeout)),
    }
}

async fn http<S>(check: &HttpProbe, mut s: S, backend: SocketAddr) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let host = check.host.clone().unwrap_or_else(|| backend.to_string());
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: balancer-health-check\r\nConnection: close\r\n\r\n",
        check.method, check.path
    );
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| Failure::io(Step::Send, &e))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < MAX_STATUS_LINE {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| Failure::io(Step::Read, &e))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let got = status_code(&buf)?;
    let want = check.expect_status;
    if (want.0..=want.1).contains(&got) {
        Ok(())
    } else {
        Err(Failure::Status { got, want })
    }
}

/// The status code of an HTTP/1.x status line at the start of `buf`.
fn status_code(buf: &[u8]) -> Result<u16, Failure> {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    let version = words.next().unwrap_or_default();
    let code = words.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if version.starts_with("HTTP/1.") && (100..=599).contains(&c) => Ok(c),
        _ if buf.is_empty() => Err(Failure::Unanswered),
        _ => Err(Failure::answer(line, "not an HTTP response")),
    }
}

async fn udp(check: &UdpProbe, backend: SocketAddr) -> Result<(), Failure> {
    let s = connect_udp(backend).await?;
    s.send(check.send.as_bytes())
        .await
        .map_err(|e| Failure::io(Step::Send, &e))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = s
        .recv(&mut buf)
        .await
        .map_err(|e| Failure::io(Step::Read, &e))?;
    let answer = String::from_utf8_lossy(&buf[..n]);
    match &check.expect {
        Some(want) if !answer.contains(want.as_str()) => {
            Err(Failure::answer(&buf[..n], "lacks the expected text"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;
    use crate::runtime::failure::Failure;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Busy\r\nX: y"), Ok(503));
        assert_eq!(status_code(b""), Err(Failure::Unanswered));
        assert!(
            status_code(b"SSH-2.0-OpenSSH\r\n")
                .unwrap_err()
                .to_string()
                .contains("not an HTTP")
        );
        assert!(status_code(b"HTTP/1.1 abc\r\n").is_err());
        assert!(status_code(b"HTTP/1.1 999 x\r\n").is_err());
    }
}
