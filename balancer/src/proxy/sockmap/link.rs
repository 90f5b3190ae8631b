//! Enters one connection's two sockets into the relay's maps, in the order
//! that loses no byte, and takes them out again.
//!
//! Order: each socket's byte counter, then each socket as the other's peer
//! (a target only, no program runs for it yet), then each socket into the
//! sockets map, which starts its verdict program: by then the peer it sends
//! to is in place. Bytes that arrived before the program started are still
//! queued on the socket; `SO_RCVLOWAT` makes the kernel look at the queue
//! again (it calls the socket's data-ready hook, now the verdict's).

use std::{io, os::fd::AsRawFd};

use tokio::net::TcpStream;

use super::{
    load::Relay,
    sockopt::{cookie, kick, written},
};

/// Why a connection is not relayed in the kernel.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Nothing was changed: the connection can be spliced instead.
    #[error("not relayed in the kernel ({0}); splicing")]
    Unlinked(io::Error),
    /// One socket's program runs and the other's could not start: the
    /// connection cannot be carried on either way and must be reset.
    #[error("half linked, closing the connection: {0}")]
    Broken(io::Error),
}

/// A connection in the relay's maps. Dropping it removes its counters; the
/// kernel removes the sockets from the socket maps when they close.
pub struct Link<'r> {
    relay: &'r Relay,
    /// Cookies: the client's, the backend's.
    pub cookies: [u64; 2],
    /// Bytes written into each destination before the relay (the backend's,
    /// then the client's): what the drain check subtracts.
    pub written_before: [u64; 2],
}

impl<'r> Link<'r> {
    /// Links `client` and `backend`.
    pub fn new(
        relay: &'r Relay,
        client: &TcpStream,
        backend: &TcpStream,
    ) -> Result<Self, LinkError> {
        let unlinked = LinkError::Unlinked;
        let cookies = [
            cookie(client).map_err(unlinked)?,
            cookie(backend).map_err(unlinked)?,
        ];
        let written_before = [
            written(backend).map_err(unlinked)?,
            written(client).map_err(unlinked)?,
        ];
        let link = Link {
            relay,
            cookies,
            written_before,
        };
        let [c, b] = cookies;
        {
            let mut maps = relay
                .maps
                .lock()
                .map_err(|_| unlinked(io::Error::other("relay maps lock poisoned")))?;
            // Counters and peers first: no program runs for a socket yet,
            // so a failure here changes nothing the splice cannot take
            // over (the drop of `link` removes the counters).
            let peered = (|| {
                maps.bytes.insert(c, 0, 0)?;
                maps.bytes.insert(b, 0, 0)?;
                maps.peers.insert(c, backend.as_raw_fd(), 0)?;
                maps.peers.insert(b, client.as_raw_fd(), 0)?;
                maps.sockets.insert(c, client.as_raw_fd(), 0)
            })();
            if let Err(e) = peered {
                // A socket left in a map keeps the relay's hooks: take both
                // out before the splice gets them.
                for k in &cookies {
                    let _ = maps.peers.remove(k);
                    let _ = maps.sockets.remove(k);
                }
                return Err(unlinked(os_error(e)));
            }
            // The client's program runs from here on: no way back.
            maps.sockets
                .insert(b, backend.as_raw_fd(), 0)
                .map_err(|e| LinkError::Broken(os_error(e)))?;
        }
        for s in [client, backend] {
            kick(s).map_err(LinkError::Broken)?;
        }
        Ok(link)
    }

    /// Bytes the program has moved out of the client and out of the backend.
    pub fn moved(&self) -> io::Result<[u64; 2]> {
        let maps = self
            .relay
            .maps
            .lock()
            .map_err(|_| io::Error::other("relay maps lock poisoned"))?;
        let get = |c: &u64| {
            maps.bytes
                .get(c, 0)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        Ok([get(&self.cookies[0])?, get(&self.cookies[1])?])
    }
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        if let Ok(mut maps) = self.relay.maps.lock() {
            for c in &self.cookies {
                let _ = maps.bytes.remove(c);
            }
        }
    }
}

/// The system call's error inside aya's, so its errno can be told apart.
fn os_error(e: aya::maps::MapError) -> io::Error {
    match e {
        aya::maps::MapError::SyscallError(s) => s.io_error,
        other => io::Error::other(other.to_string()),
    }
}
