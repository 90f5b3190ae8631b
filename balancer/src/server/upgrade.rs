//! `balancer run --upgrade`: the listening sockets of the daemon running
//! with the same `state_dir` handed to a new one, so an upgrade refuses no
//! connection. The running daemon offers them on `state_dir/upgrade.sock`;
//! the new one (its config already validated) asks, receives every
//! listening socket with `SCM_RIGHTS` beside a line naming each one's
//! protocol and address, serves them with the rest of its config, and
//! says `SERVING`; only then does the old one stop accepting, let its open
//! connections finish within `shutdown_grace`, and exit. A new daemon that
//! fails before `SERVING` changes nothing: the old one keeps serving.
//! Both accept from the same sockets meanwhile, which the kernel allows.
//!
//! The admin API's socket crosses too (its address stays bound), and so
//! does the lock on the XDP pin directory: the old daemon stops writing
//! the maps when it hands it over, and the new one re-adopts them and
//! swaps its program into the pinned link, as after a restart.
#![expect(
    unsafe_code,
    reason = "sendmsg(2)/recvmsg(2) with SCM_RIGHTS have no std wrapper"
)]

use std::{
    fmt::Write as _,
    io::{self, BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use crate::config::model::Protocol;

/// The most sockets one handover carries.
const MAX_SOCKETS: usize = 250;
/// How long the old daemon waits for the new one to serve.
pub const SERVE_WITHIN: Duration = Duration::from_mins(1);

/// Where a running daemon offers its sockets.
#[must_use]
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("upgrade.sock")
}

/// What one descriptor handed over is, as its line names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A listener's socket (`tcp ADDR`, `udp ADDR`).
    Listener(Protocol, SocketAddr),
    /// The admin API's listening socket (`admin ADDR`).
    Admin(SocketAddr),
    /// The locked XDP pin directory (`pins PATH`).
    Pins(PathBuf),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listener(protocol, address) => write!(f, "{protocol} {address}"),
            Self::Admin(address) => write!(f, "admin {address}"),
            Self::Pins(path) => write!(f, "pins {}", path.display()),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = ();

    fn from_str(line: &str) -> Result<Self, ()> {
        let (what, rest) = line.split_once(' ').ok_or(())?;
        match what {
            "tcp" => Ok(Self::Listener(Protocol::Tcp, rest.parse().map_err(|_| ())?)),
            "udp" => Ok(Self::Listener(Protocol::Udp, rest.parse().map_err(|_| ())?)),
            "admin" => Ok(Self::Admin(rest.parse().map_err(|_| ())?)),
            "pins" if !rest.is_empty() => Ok(Self::Pins(PathBuf::from(rest))),
            _ => Err(()),
        }
    }
}

/// Everything a running daemon handed over.
#[derive(Debug, Default)]
pub struct Received {
    /// Its listeners' sockets.
    pub listeners: Vec<Handed>,
    /// Its admin API's socket.
    pub admin: Option<(SocketAddr, OwnedFd)>,
    /// Its locked XDP pin directory.
    pub pins: Option<(PathBuf, OwnedFd)>,
}

/// One listening socket handed over.
#[derive(Debug)]
pub struct Handed {
    /// Its protocol.
    pub protocol: Protocol,
    /// Its address.
    pub address: SocketAddr,
    /// The socket.
    pub fd: OwnedFd,
}

/// Why a handover failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// No daemon offers its sockets there.
    #[error(
        "no running daemon offers its sockets at {}: start without --upgrade, or use the `state_dir` of the running one", path.display()
    )]
    NoDaemon {
        /// The socket path.
        path: PathBuf,
        /// Why connecting failed.
        source: io::Error,
    },
    /// The conversation broke.
    #[error("socket handover: {0}")]
    Io(#[from] io::Error),
    /// The other side said something unexpected.
    #[error("socket handover: unexpected {0:?}")]
    Protocol(String),
}

/// The new daemon's side: asks the daemon at `path` for its sockets.
/// Returns them and the open conversation, on which [`serving`] is said
/// once they serve.
pub fn receive(path: &Path) -> Result<(Received, UnixStream, u32), UpgradeError> {
    let mut stream = UnixStream::connect(path).map_err(|source| UpgradeError::NoDaemon {
        path: path.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(SERVE_WITHIN))?;
    writeln!(stream, "UPGRADE {}", std::process::id())?;
    let (text, fds) = recv_with_fds(&stream)?;
    let mut lines = text.lines();
    let old_pid = lines
        .next()
        .and_then(|l| l.strip_prefix("SOCKETS "))
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| UpgradeError::Protocol(text.clone()))?;
    let names: Vec<&str> = lines.collect();
    if names.len() != fds.len() {
        return Err(UpgradeError::Protocol(format!(
            "{} names for {} sockets",
            names.len(),
            fds.len()
        )));
    }
    let mut received = Received::default();
    for (name, fd) in names.into_iter().zip(fds) {
        match name
            .parse::<Kind>()
            .map_err(|()| UpgradeError::Protocol(name.to_owned()))?
        {
            Kind::Listener(protocol, address) => received.listeners.push(Handed {
                protocol,
                address,
                fd,
            }),
            Kind::Admin(address) => received.admin = Some((address, fd)),
            Kind::Pins(path) => received.pins = Some((path, fd)),
        }
    }
    Ok((received, stream, old_pid))
}

/// [`receive`] from the daemon running with `state_dir`, logged.
pub fn take_over(state_dir: &Path) -> Result<(Received, UnixStream, u32), UpgradeError> {
    let (received, conversation, old) = receive(&socket_path(state_dir))?;
    tracing::info!(
        from_pid = old,
        sockets = received.listeners.len(),
        admin = received.admin.is_some(),
        xdp_pins = ?received.pins.as_ref().map(|p| p.0.display().to_string()),
        "received the running daemon's listening sockets"
    );
    Ok((received, conversation, old))
}

/// Starts this daemon's successor, as SIGUSR2 asks (the upgrade path under
/// a service manager, which must see the new process in the service): the
/// binary now at `exe`, the path this one was started from (a new version
/// once installed there), with this one's arguments and `--upgrade`, its
/// environment and its standard output and error. Under systemd the
/// successor reports itself with `MAINPID=` (`NotifyAccess=all`); the
/// watchdog and socket-activation variables naming this process are not
/// passed, as they would not name it.
pub fn start_successor(exe: &Path) -> io::Result<std::process::Child> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if !args.iter().any(|a| a == "--upgrade") {
        args.push("--upgrade".into());
    }
    std::process::Command::new(exe)
        .args(args)
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .stdin(std::process::Stdio::null())
        .spawn()
}

/// Tells the old daemon its sockets serve here now.
pub fn serving(mut stream: UnixStream) -> io::Result<()> {
    stream.write_all(b"SERVING\n")
}

/// The old daemon's side of one conversation on `stream`: reads the new
/// daemon's request, sends `sockets`, and waits for `SERVING`. Returns the
/// new daemon's pid once it serves. Blocking: run it off the async
/// threads.
pub fn offer(stream: &UnixStream, sockets: &[(Kind, OwnedFd)]) -> Result<u32, UpgradeError> {
    stream.set_read_timeout(Some(SERVE_WITHIN))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let pid = line
        .trim()
        .strip_prefix("UPGRADE ")
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| UpgradeError::Protocol(line.clone()))?;
    let mut text = format!("SOCKETS {}\n", std::process::id());
    for (kind, _) in sockets.iter().take(MAX_SOCKETS) {
        let _ = writeln!(text, "{kind}");
    }
    let fds: Vec<RawFd> = sockets
        .iter()
        .take(MAX_SOCKETS)
        .map(|s| s.1.as_raw_fd())
        .collect();
    send_with_fds(stream, text.as_bytes(), &fds)?;
    line.clear();
    reader.read_line(&mut line)?;
    if line.trim() == "SERVING" {
        Ok(pid)
    } else {
        Err(UpgradeError::Protocol(line))
    }
}

/// Room for the control message carrying `n` descriptors.
fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((n * size_of::<RawFd>()) as u32) as usize }
}

fn send_with_fds(stream: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut control = vec![0u8; cmsg_space(fds.len().max(1))];
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // call and the control buffer has room for the header and `fds`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = control.len();
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of_val(fds) as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                size_of_val(fds),
            );
        }
        if libc::sendmsg(stream.as_raw_fd(), &raw const msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn recv_with_fds(stream: &UnixStream) -> io::Result<(String, Vec<OwnedFd>)> {
    let mut data = vec![0u8; 64 * 1024];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = vec![0u8; cmsg_space(MAX_SOCKETS)];
    let mut fds = Vec::new();
    // SAFETY: as in `send_with_fds`; the kernel fills at most the buffers'
    // lengths, and each descriptor it passes is new and ours to own.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        let n = libc::recvmsg(stream.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                let count = bytes / size_of::<RawFd>();
                let first = libc::CMSG_DATA(cmsg);
                for i in 0..count {
                    let mut raw = [0u8; size_of::<RawFd>()];
                    std::ptr::copy_nonoverlapping(
                        first.add(i * raw.len()),
                        raw.as_mut_ptr(),
                        raw.len(),
                    );
                    fds.push(OwnedFd::from_raw_fd(RawFd::from_ne_bytes(raw)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
        n.cast_unsigned()
    };
    data.truncate(n);
    Ok((String::from_utf8_lossy(&data).into_owned(), fds))
}

/// The running daemon's offer of its sockets: a unix listener at
/// [`socket_path`], bound once the daemon serves (a start that fails
/// leaves the running daemon's offer alone).
pub struct Offers(Option<tokio::net::UnixListener>);

impl Offers {
    /// Binds `state_dir/upgrade.sock`, replacing a stale one; without it
    /// (an unwritable state directory) upgrades are refused, not serving.
    #[must_use]
    pub fn bind(state_dir: &Path) -> Self {
        let path = socket_path(state_dir);
        let _ = std::fs::create_dir_all(state_dir);
        let _ = std::fs::remove_file(&path);
        match tokio::net::UnixListener::bind(&path) {
            Ok(l) => Self(Some(l)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "cannot offer the listening sockets for `run --upgrade`");
                Self(None)
            }
        }
    }

    /// The next new daemon asking, as a blocking stream for [`offer`].
    pub async fn next(&self) -> UnixStream {
        loop {
            let Some(listener) = &self.0 else {
                return std::future::pending().await;
            };
            if let Ok((stream, _)) = listener.accept().await
                && let Ok(std) = stream.into_std()
                && std.set_nonblocking(false).is_ok()
            {
                return std;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpListener,
        os::{fd::AsFd as _, unix::net::UnixStream},
    };

    use super::{Kind, offer, receive, serving};
    use crate::config::model::Protocol;

    #[test]
    fn listening_sockets_cross_to_the_new_daemon_and_serve_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("upgrade.sock");
        let offered = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = tcp.local_addr().expect("addr");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let udp_address = udp.local_addr().expect("addr");
        let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().expect("dup");
        let sockets = vec![
            (Kind::Listener(Protocol::Tcp, address), dup(tcp.as_fd())),
            (Kind::Listener(Protocol::Udp, udp_address), dup(udp.as_fd())),
            (Kind::Admin(address), dup(tcp.as_fd())),
            (Kind::Pins(dir.path().to_path_buf()), dup(tcp.as_fd())),
        ];
        let old = std::thread::spawn(move || {
            let (stream, _) = offered.accept().expect("accept");
            offer(&stream, &sockets)
        });
        let (received, stream, old_pid) = receive(&path).expect("receive");
        assert_eq!(old_pid, std::process::id());
        assert_eq!(received.admin.as_ref().map(|a| a.0), Some(address));
        assert_eq!(
            received.pins.as_ref().map(|p| p.0.as_path()),
            Some(dir.path())
        );
        let handed = received.listeners;
        assert_eq!(handed.len(), 2);
        assert_eq!(
            (handed[0].protocol, handed[0].address),
            (Protocol::Tcp, address)
        );
        assert_eq!(handed[1].protocol, Protocol::Udp);
        // The received socket is the same listening socket: a connection
        // to the address is accepted through it.
        let received = TcpListener::from(handed.into_iter().next().expect("tcp").fd);
        let mut client = std::net::TcpStream::connect(address).expect("connect");
        client.write_all(b"hi").expect("send");
        let (mut accepted, _) = received.accept().expect("accept on the handed socket");
        let mut buf = [0u8; 2];
        accepted.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hi");
        serving(stream).expect("say serving");
        assert_eq!(
            old.join().expect("old side").expect("offer"),
            std::process::id()
        );
    }

    #[test]
    fn each_kind_reads_back_from_its_line() {
        for kind in [
            Kind::Listener(Protocol::Tcp, "127.0.0.1:80".parse().expect("addr")),
            Kind::Listener(Protocol::Udp, "[::1]:53".parse().expect("addr")),
            Kind::Admin("127.0.0.1:9100".parse().expect("addr")),
            Kind::Pins("/sys/fs/bpf/balancer".into()),
        ] {
            assert_eq!(kind.to_string().parse::<Kind>(), Ok(kind));
        }
        for bad in ["", "tcp", "sctp 1.2.3.4:5", "admin nowhere", "pins "] {
            assert!(bad.parse::<Kind>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn without_a_daemon_the_error_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = receive(&dir.path().join("upgrade.sock")).expect_err("nothing listens");
        assert!(e.to_string().contains("start without --upgrade"), "{e}");
        // A conversation that ends before SERVING is an error on the old side.
        let (a, b) = UnixStream::pair().expect("pair");
        let old = std::thread::spawn(move || offer(&a, &[]));
        let mut b = b;
        b.write_all(b"UPGRADE 1\n").expect("ask");
        let mut buf = [0u8; 64];
        let _ = b.read(&mut buf).expect("sockets line");
        drop(b);
        assert!(old.join().expect("old side").is_err());
    }
}
