//! Listening sockets passed by systemd socket activation (`sd_listen_fds(3)`):
//! `LISTEN_PID` must name this process, `LISTEN_FDS` counts descriptors from
//! 3 on, and `LISTEN_FDNAMES` names them (`FileDescriptorName=` in the
//! `.socket` unit). A socket named after a listener serves it instead of one
//! bound here, so connections that arrive while the daemon restarts wait in
//! its queue, held by systemd, and are served by the next process.
#![expect(
    unsafe_code,
    reason = "descriptors passed by systemd become owned sockets by number"
)]

use std::{
    collections::HashMap,
    os::fd::{FromRawFd as _, OwnedFd},
};

use socket2::{Socket as RawSocket, Type};
use tokio::net::{TcpListener, UdpSocket};

use super::listeners::Socket;
use crate::{
    config::model::{Listener, Protocol},
    reload::ListenerError,
};

/// How a handed-over socket is known: no listener name is like it.
fn handed_key(protocol: Protocol, address: std::net::SocketAddr) -> String {
    format!("{protocol} {address}")
}

/// The first descriptor systemd passes.
const FIRST_FD: i32 = 3;

/// Sockets passed to this process, by name, not yet serving.
#[derive(Default)]
pub struct Inherited(HashMap<String, OwnedFd>);

impl Inherited {
    /// The sockets the environment passes to this process (none when
    /// `LISTEN_PID` names another one, as for a child of the daemon).
    #[must_use]
    pub fn from_env() -> Self {
        let var = |k| std::env::var(k).ok();
        let for_us = var("LISTEN_PID")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p == std::process::id());
        let count = var("LISTEN_FDS")
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|_| for_us)
            .unwrap_or(0);
        let names = var("LISTEN_FDNAMES").unwrap_or_default();
        let mut names = names.split(':');
        let mut by_name = HashMap::new();
        for fd in FIRST_FD..FIRST_FD + count.clamp(0, 1024) {
            // SAFETY: systemd passes descriptors 3.. LISTEN_FDS to this
            // process, each open and owned by nobody else here.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = names
                .next()
                .filter(|n| !n.is_empty())
                .map_or_else(|| format!("fd{fd}"), str::to_owned);
            by_name.insert(name, owned);
        }
        Self(by_name)
    }

    /// The socket passed for listener `l` (by its name), checked to be of
    /// its protocol and on its address, ready to serve.
    pub fn take(&mut self, l: &Listener) -> Result<Option<Socket>, ListenerError> {
        let Some(fd) = self
            .0
            .remove(&l.name)
            .or_else(|| self.0.remove(&handed_key(l.protocol, l.address)))
        else {
            return Ok(None);
        };
        let bad = |reason: String| ListenerError::Inherited {
            listener: l.name.clone(),
            reason,
        };
        let socket = RawSocket::from(fd);
        let io = |what: &str, e: std::io::Error| bad(format!("{what}: {e}"));
        let local = socket
            .local_addr()
            .map_err(|e| io("its address", e))?
            .as_socket()
            .ok_or_else(|| bad("not an IP socket".to_owned()))?;
        let kind = socket.r#type().map_err(|e| io("its type", e))?;
        let want = match l.protocol {
            Protocol::Tcp => Type::STREAM,
            Protocol::Udp => Type::DGRAM,
        };
        if kind != want || local != l.address {
            return Err(bad(format!(
                "the socket passed under this name is {} on {local}, the listener is {} on {}",
                if kind == Type::STREAM { "tcp" } else { "udp" },
                l.protocol,
                l.address
            )));
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| io("non-blocking mode", e))?;
        Ok(Some(match l.protocol {
            Protocol::Tcp => {
                if !socket.is_listener().map_err(|e| io("its state", e))? {
                    socket.listen(4096).map_err(|e| io("listen", e))?;
                }
                Socket::Tcp(TcpListener::from_std(socket.into()).map_err(|e| io("serving it", e))?)
            }
            Protocol::Udp => {
                Socket::Udp(UdpSocket::from_std(socket.into()).map_err(|e| io("serving it", e))?)
            }
        }))
    }

    /// Adds sockets a running daemon handed over, known by protocol and
    /// address.
    pub fn add_handed(&mut self, handed: Vec<super::upgrade::Handed>) {
        for h in handed {
            self.0.insert(handed_key(h.protocol, h.address), h.fd);
        }
    }

    /// Names of the sockets passed that no listener took.
    #[must_use]
    pub fn unused(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, os::fd::OwnedFd};

    use super::Inherited;
    use crate::{reload::ListenerError, server::listeners::Socket};

    fn listener(protocol: &str, address: &str) -> crate::config::model::Listener {
        let text = format!(
            "version: 1\nlisteners:\n  - {{ name: web, address: \"{address}\", protocol: {protocol}, mode: proxy, pool: p }}\npools:\n  - {{ name: p, backends: [{{ address: \"127.0.0.1:9\" }}] }}\n"
        );
        crate::config::parse(&text, "t.yaml")
            .expect("config")
            .listeners
            .remove(0)
    }

    #[tokio::test]
    async fn a_passed_socket_serves_its_listener_only_on_its_protocol_and_address() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = tcp.local_addr().expect("addr").to_string();
        let mut passed = Inherited(HashMap::from([("web".to_owned(), OwnedFd::from(tcp))]));
        let served = passed.take(&listener("tcp", &address)).expect("takes it");
        assert!(matches!(served, Some(Socket::Tcp(_))));
        // Taken once: a reload's bind finds nothing passed any more.
        assert!(
            passed
                .take(&listener("tcp", &address))
                .expect("ok")
                .is_none()
        );

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut passed = Inherited(HashMap::from([("web".to_owned(), OwnedFd::from(udp))]));
        let Err(ListenerError::Inherited {
            listener: name,
            reason,
        }) = passed.take(&listener("tcp", "127.0.0.1:1"))
        else {
            panic!("a udp socket served a tcp listener");
        };
        assert_eq!(name, "web");
        assert!(
            reason.contains("is udp on 127.0.0.1:")
                && reason.contains("the listener is tcp on 127.0.0.1:1"),
            "{reason}"
        );
        assert!(passed.unused().is_empty());
    }
}
