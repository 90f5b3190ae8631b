//! Plain-socket clients for tests. They run on a thread inside the client
//! namespace (see [`crate::Netns::enter`]) and report what the far end said,
//! so tests can count which backend answered.

use socket2::{Domain, Socket, Type};
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

/// One HTTP/1.1 GET on a new connection (`Connection: close`), optionally
/// from a chosen local address. Returns the body, or the error text.
pub fn http_get(vip: SocketAddr, from: Option<IpAddr>) -> Result<String, String> {
    request(
        connect(vip, from).map_err(|e| format!("connect {vip}: {e}"))?,
        vip,
    )
}

fn request(mut s: TcpStream, vip: SocketAddr) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| format!("read: {e}"))?;
    match resp.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_owned()),
        _ => Err(format!("bad response: {resp:?}")),
    }
}

/// Connects to `to`, optionally bound to `from` first.
pub fn connect(to: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    connect_from(to, from.map(|ip| SocketAddr::new(ip, 0)))
}

/// Connects to `to` from exactly `from` (address and port), so a test can
/// send the same 5-tuple again.
pub fn connect_from(to: SocketAddr, from: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    if let Some(local) = from {
        s.set_reuse_address(true)?;
        s.bind(&local.into())?;
    }
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// [`http_get`] from exactly `from`.
pub fn http_get_from(vip: SocketAddr, from: SocketAddr) -> Result<String, String> {
    request(
        connect_from(vip, Some(from)).map_err(|e| format!("connect {vip} from {from}: {e}"))?,
        vip,
    )
}

/// An HTTP/1.1 keep-alive connection: several requests on one TCP
/// connection, so a test can tell whether its flow still reaches the same
/// backend later (another backend would reset it).
pub struct KeepAlive {
    stream: TcpStream,
    vip: SocketAddr,
}

impl KeepAlive {
    /// Connects to `vip`.
    pub fn open(vip: SocketAddr) -> std::io::Result<Self> {
        let stream = connect(vip, None)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self { stream, vip })
    }

    /// The client's end of the connection.
    pub fn local(&self) -> std::io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// One GET; returns the body, or the error text.
    pub fn get(&mut self) -> Result<String, String> {
        let vip = self.vip;
        self.stream
            .write_all(format!("GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf)));
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("bad response: {text:?}"));
            }
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                })
                .ok_or_else(|| format!("no content-length: {head:?}"))?;
            if body.len() >= length {
                return Ok(body[..length].trim().to_owned());
            }
        }
    }
}

/// `n` keep-alive connections to `vip`, each with one request made, and
/// the backend that answered it. Run inside the client's namespace.
#[must_use]
pub fn hold(vip: SocketAddr, n: usize) -> Vec<(KeepAlive, String)> {
    (0..n)
        .map(|i| {
            let mut c = KeepAlive::open(vip).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            let name = c
                .get()
                .unwrap_or_else(|e| panic!("connection {i}, first request: {e}"));
            (c, name)
        })
        .collect()
}

/// Counts occurrences of each distinct answer.
#[must_use]
pub fn tally<I: IntoIterator<Item = String>>(
    answers: I,
) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in answers {
        *m.entry(a).or_insert(0) += 1;
    }
    m
}

/// `curl` in the client namespace of `t`: the status and the body (or,
/// with `-i`, the head and body).
#[must_use]
pub fn curl(t: &crate::Topology, args: &[&str]) -> (u16, String) {
    let mut full = vec!["-s", "--max-time", "10", "-w", "\n%{http_code}"];
    full.extend_from_slice(args);
    let out = t.client.run("curl", &full);
    let (body, code) = out.rsplit_once('\n').expect("curl prints a status line");
    (code.trim().parse().expect("a status"), body.to_owned())
}
