//! What the daemon's loopback tests share.

use std::{net::TcpListener, process::Child};

/// A daemon killed when dropped, so a failing test leaves none behind (a
/// leftover daemon would also hold the test runner's output open).
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Daemon {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A loopback TCP port free right now (another process may take it
/// before the test binds it; the tests accept that small race).
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
