//! What the daemon's loopback tests share.

use std::net::TcpListener;

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
