//! Enters one connection's two sockets into the relay's maps, in the order
//! that loses no byte, and takes them out again.
//!
//! Order: each socket's byte counter, then each socket as the other's peer
//! (a target only, no program runs for it yet), then each socket into the
//! sockets map, which starts its verdict program: by then the peer it sends
//! to is in place. The backend goes first: it sends nothing before the
//! client's bytes reach it (which needs the client's program), while the
//! client may send its next bytes at any moment, and a backend that
//! answered them and closed could no longer be entered (socket maps take
//! only established sockets). Bytes that arrived before a program started
//! are still queued on its socket; `SO_RCVLOWAT` makes the kernel look at
//! the queue again (it calls the socket's data-ready hook, now the
//! verdict's).

use std::{io, os::fd::AsRawFd, time::Duration};

use tokio::{net::TcpStream, time::Instant};

use super::{
    load::{Maps, Relay},
    sockopt::{cookie, kick, written},
};

/// How long an undone link waits for the bytes the backend's program
/// already moved to be written, before giving the connection up.
const UNDO_DRAIN: Duration = Duration::from_secs(1);

/// Why a connection is not relayed in the kernel.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The maps are as before: the connection can be spliced instead.
    #[error("not relayed in the kernel ({0}); splicing")]
    Unlinked(io::Error),
    /// The relay could neither be completed nor undone cleanly: the
    /// connection must be reset.
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
    pub async fn new(
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
        // From here on, dropping `link` removes the counters.
        let link = Link {
            relay,
            cookies,
            written_before,
        };
        let [c, b] = cookies;
        let entered = {
            let mut maps = link.maps().map_err(unlinked)?;
            // Counters, peers and the backend's program: a failure up to
            // the last leaves nothing running.
            let first = (|| {
                maps.bytes.insert(c, 0, 0)?;
                maps.bytes.insert(b, 0, 0)?;
                maps.peers.insert(c, backend.as_raw_fd(), 0)?;
                maps.peers.insert(b, client.as_raw_fd(), 0)?;
                maps.sockets.insert(b, backend.as_raw_fd(), 0)
            })();
            if let Err(e) = first {
                forget(&mut maps, &cookies);
                return Err(unlinked(os_error(e)));
            }
            let client_in = maps.sockets.insert(c, client.as_raw_fd(), 0);
            if client_in.is_err() {
                // Stop the backend's program before anything else moves.
                let _ = maps.sockets.remove(&b);
            }
            client_in
        };
        if let Err(e) = entered {
            // Typically the client sent its FIN meanwhile. The backend's
            // program may have sent bytes to the client already, from a
            // work queue: the splice must not overtake them, and taking
            // the client out of the maps before they are written would
            // drop them.
            link.undo(client).await?;
            return Err(unlinked(os_error(e)));
        }
        for s in [client, backend] {
            kick(s).map_err(LinkError::Broken)?;
        }
        Ok(link)
    }

    fn maps(&self) -> io::Result<std::sync::MutexGuard<'_, Maps>> {
        self.relay
            .maps
            .lock()
            .map_err(|_| io::Error::other("relay maps lock poisoned"))
    }

    /// After the backend's program ran alone: waits until the client has
    /// written all it moved, then takes both sockets out of the maps.
    async fn undo(&self, client: &TcpStream) -> Result<(), LinkError> {
        let broken = LinkError::Broken;
        let moved = self.moved().map_err(broken)?[1];
        let want = self.written_before[1] + moved;
        let deadline = Instant::now() + UNDO_DRAIN;
        while written(client).map_err(broken)? < want {
            if Instant::now() >= deadline {
                return Err(broken(io::Error::other(
                    "the backend's first bytes were not written to the client in time",
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut maps = self.maps().map_err(broken)?;
        forget(&mut maps, &self.cookies);
        Ok(())
    }

    /// Bytes the program has moved out of the client and out of the backend.
    pub fn moved(&self) -> io::Result<[u64; 2]> {
        let maps = self.maps()?;
        let get = |c: &u64| maps.bytes.get(c, 0).map_err(os_error);
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

/// Takes both sockets out of the socket maps (what is not there is
/// skipped): a socket left in one keeps the relay's hooks, which the splice
/// must not meet.
fn forget(maps: &mut Maps, cookies: &[u64; 2]) {
    for k in cookies {
        let _ = maps.sockets.remove(k);
        let _ = maps.peers.remove(k);
    }
}

/// The system call's error inside aya's, so its errno can be told apart.
fn os_error(e: aya::maps::MapError) -> io::Error {
    match e {
        aya::maps::MapError::SyscallError(s) => s.io_error,
        other => io::Error::other(other.to_string()),
    }
}
