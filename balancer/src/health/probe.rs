//! One active check against one backend: a TCP connect, an HTTP request
//! whose status must fall in a range, or a UDP datagram that must be
//! answered. Each is bounded by the check's timeout as a whole, so a backend
//! that accepts and then hangs fails like one that never answers.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use crate::config::model::{HealthCheck, HttpProbe, Probe, UdpProbe};

/// The most of an HTTP answer read to find its status line.
const MAX_STATUS_LINE: usize = 1024;
/// The largest UDP answer taken in.
const MAX_DATAGRAM: usize = 2048;

/// Runs `check` against `backend`: how long it took, or why it failed.
pub async fn probe(check: &HealthCheck, backend: SocketAddr) -> Result<Duration, String> {
    let start = Instant::now();
    let work = async {
        match &check.probe {
            Probe::Tcp => tcp(backend).await,
            Probe::Http(http_probe) => http(http_probe, backend).await,
            Probe::Udp(udp_probe) => udp(udp_probe, backend).await,
        }
    };
    match tokio::time::timeout(check.timeout, work).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

async fn tcp(backend: SocketAddr) -> Result<(), String> {
    TcpStream::connect(backend)
        .await
        .map(drop)
        .map_err(|e| format!("connect: {e}"))
}

async fn http(check: &HttpProbe, backend: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(backend)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let host = check.host.clone().unwrap_or_else(|| backend.to_string());
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: balancer-health-check\r\nConnection: close\r\n\r\n",
        check.method, check.path
    );
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < MAX_STATUS_LINE {
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = status_code(&buf)?;
    let (lo, hi) = check.expect_status;
    if (lo..=hi).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}, expected {lo}-{hi}"))
    }
}

/// The status code of an HTTP/1.x status line at the start of `buf`.
fn status_code(buf: &[u8]) -> Result<u16, String> {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    let version = words.next().unwrap_or_default();
    let code = words.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if version.starts_with("HTTP/1.") && (100..=599).contains(&c) => Ok(c),
        _ if buf.is_empty() => Err("closed without an answer".to_owned()),
        _ => Err(format!(
            "not an HTTP response: {:?}",
            text.chars().take(60).collect::<String>()
        )),
    }
}

async fn udp(check: &UdpProbe, backend: SocketAddr) -> Result<(), String> {
    let any: SocketAddr = if backend.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    s.connect(backend)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.send(check.send.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = s
        .recv(&mut buf)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    let answer = String::from_utf8_lossy(&buf[..n]);
    match &check.expect {
        Some(want) if !answer.contains(want.as_str()) => Err(format!(
            "answer {:?} lacks {want:?}",
            answer.chars().take(60).collect::<String>()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Busy\r\nX: y"), Ok(503));
        assert!(status_code(b"").unwrap_err().contains("closed"));
        assert!(
            status_code(b"SSH-2.0-OpenSSH\r\n")
                .unwrap_err()
                .contains("not an HTTP")
        );
        assert!(status_code(b"HTTP/1.1 abc\r\n").is_err());
        assert!(status_code(b"HTTP/1.1 999 x\r\n").is_err());
    }
}
