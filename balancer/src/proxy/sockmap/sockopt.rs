//! The socket options the relay reads and sets that libc or socket2 do not
//! wrap: a socket's cookie, its written-byte count, and the data-ready kick.
#![expect(
    unsafe_code,
    reason = "getsockopt and setsockopt through libc; each block has a SAFETY note"
)]

use std::{io, os::fd::AsRawFd};

use tokio::net::TcpStream;

/// `SO_COOKIE` (linux/asm-generic/socket.h): a socket's 64-bit id, the one
/// `bpf_get_socket_cookie` returns. libc does not export it.
const SO_COOKIE: libc::c_int = 57;

/// Offsets in the kernel's `struct tcp_info` (include/uapi/linux/tcp.h);
/// libc's copy stops before the last two.
const NOTSENT_BYTES: usize = 144;
const BYTES_SENT: usize = 200;
const BYTES_RETRANS: usize = 208;
const TCP_INFO_LEN: usize = 216;

/// Bytes ever written into `s`'s send queue: sent once (sent minus
/// retransmitted) plus not yet sent. One `TCP_INFO` read, so the three
/// figures are from one moment.
pub fn written(s: &TcpStream) -> io::Result<u64> {
    let mut info = [0u8; TCP_INFO_LEN];
    let mut len = TCP_INFO_LEN as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for the kernel to write.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < TCP_INFO_LEN {
        return Err(io::Error::other(
            "the kernel's tcp_info has no bytes_sent (Linux 4.19 or later needed)",
        ));
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&info[o..o + 8]);
        u64::from_ne_bytes(b)
    };
    let mut n = [0u8; 4];
    n.copy_from_slice(&info[NOTSENT_BYTES..NOTSENT_BYTES + 4]);
    Ok(u64_at(BYTES_SENT) - u64_at(BYTES_RETRANS) + u64::from(u32::from_ne_bytes(n)))
}

/// `s`'s socket cookie.
pub fn cookie(s: &TcpStream) -> io::Result<u64> {
    let mut v = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the kernel to write for this call.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_COOKIE,
            (&raw mut v).cast(),
            &raw mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs the socket's data-ready hook on what is already queued: setting
/// `SO_RCVLOWAT` does that on TCP (`tcp_set_rcvlowat`), and 1 is the
/// default, so nothing else changes.
pub fn kick(s: &TcpStream) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call; the length is its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
