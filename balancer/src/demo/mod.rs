//! Built-in demo backends for the embedded default (and tests): on each
//! address, an HTTP server that answers every request with its own name and a
//! UDP server that echoes datagrams prefixed with its name. They exist so a
//! newcomer sees the spread with `curl`, not for production use.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
};
use tracing::{debug, info};

use crate::proxy::{bind_tcp, bind_udp};

/// Largest request head the demo server reads.
const MAX_HEAD: usize = 8 * 1024;

/// Binds every demo backend (HTTP and UDP echo on each address) and serves
/// them on background tasks. Binding happens before this returns, so an
/// address in use is an error here, not a log line later.
pub fn start(addresses: &[SocketAddr]) -> Result<(), (SocketAddr, io::Error)> {
    let mut bound = Vec::new();
    for (i, &addr) in addresses.iter().enumerate() {
        let name: Arc<str> = format!("backend-{}", i + 1).into();
        let tcp = bind_tcp(addr).map_err(|e| (addr, e))?;
        let udp = bind_udp(addr).map_err(|e| (addr, e))?;
        bound.push((name, tcp, udp));
    }
    for (name, tcp, udp) in bound {
        info!(backend = %name, address = ?tcp.local_addr().ok(), "demo backend serving HTTP and UDP echo");
        tokio::spawn(serve_http(tcp, name.clone()));
        tokio::spawn(serve_udp(udp, name));
    }
    Ok(())
}

async fn serve_http(listener: TcpListener, name: Arc<str>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let name = name.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &name).await {
                        debug!(backend = %name, error = %e, "demo request failed");
                    }
                });
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// Reads one request head and answers with the backend's name; keeps the
/// connection for further requests unless the client asked to close it.
async fn answer(mut stream: TcpStream, name: &str) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let request = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            let close =
                request.contains("connection: close") || request.starts_with("get / http/1.0");
            let body = format!("{name}\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-backend: {name}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" },
            );
            stream.write_all(response.as_bytes()).await?;
            if close {
                return stream.shutdown().await;
            }
            head.drain(..end + 4);
        }
        if head.len() > MAX_HEAD {
            return stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    }
}

async fn serve_udp(socket: UdpSocket, name: Arc<str>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mut reply = Vec::with_capacity(name.len() + 2 + n);
            reply.extend_from_slice(name.as_bytes());
            reply.extend_from_slice(b": ");
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    }
}
