//! What the XDP program's SYN cookies must agree on with this host's TCP
//! stack, read from its sysctls: the kernel validates the handshake's ACK
//! and builds the connection, so the SYN-ACK the program sends must be
//! the one the kernel would have sent in cookie mode.
//!
//! - `net.ipv4.tcp_syncookies` must be 2: the kernel takes a cookie ACK
//!   only if the listener sent cookies itself in the last two minutes,
//!   and in mode 2 it answers every SYN that reaches it (those below the
//!   threshold) with one.
//! - `net.ipv4.tcp_timestamps` 2 (timestamps without per-connection
//!   offsets) lets the cookie carry the client's window scale and SACK in
//!   its timestamp; with 1 the offset is a kernel secret, so the program
//!   sends no timestamp and the connection has neither.
//! - The window scale the kernel will pick follows `tcp_rmem` and
//!   `rmem_max`; the MSS follows the interface MTU.

use std::{fs, io, path::Path};

use balancer_common::guard::{Cookie, GUARD_COOKIE_SACK, GUARD_COOKIE_TS, GUARD_COOKIE_WSCALE};

/// The largest TCP window scale.
const MAX_WSCALE: u32 = 14;

/// Cookie settings for the program, when this host allows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookies {
    /// MSS and window scale to advertise.
    pub cookie: Cookie,
    /// `GUARD_COOKIE_*` flags.
    pub flags: u32,
}

/// The sysctls cookies depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSysctls {
    /// `net.ipv4.tcp_syncookies`.
    pub syncookies: u32,
    /// `net.ipv4.tcp_timestamps`.
    pub timestamps: u32,
    /// `net.ipv4.tcp_sack`.
    pub sack: bool,
    /// `net.ipv4.tcp_window_scaling`.
    pub window_scaling: bool,
    /// `net.ipv4.tcp_rmem`, its third (max) value.
    pub rmem_max_tcp: u64,
    /// `net.core.rmem_max`.
    pub rmem_max: u64,
}

impl TcpSysctls {
    /// Reads them from `/proc/sys` (this network namespace's).
    pub fn read() -> io::Result<Self> {
        Self::read_from(Path::new("/proc/sys/net"))
    }

    fn read_from(net: &Path) -> io::Result<Self> {
        let text = |p: &str| fs::read_to_string(net.join(p));
        let number = |p: &str| -> io::Result<u64> {
            let t = text(p)?;
            t.split_whitespace()
                .last()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{p}: `{t}`")))
        };
        Ok(Self {
            syncookies: u32::try_from(number("ipv4/tcp_syncookies")?).unwrap_or(0),
            timestamps: u32::try_from(number("ipv4/tcp_timestamps")?).unwrap_or(0),
            sack: number("ipv4/tcp_sack")? != 0,
            window_scaling: number("ipv4/tcp_window_scaling")? != 0,
            rmem_max_tcp: number("ipv4/tcp_rmem")?,
            rmem_max: number("core/rmem_max")?,
        })
    }

    /// The program's cookie settings on an interface of `mtu`, or why the
    /// kernel would refuse the cookies it sends.
    pub fn cookies(&self, mtu: u32) -> Result<Cookies, String> {
        if self.syncookies != 2 {
            return Err(format!(
                "net.ipv4.tcp_syncookies is {}; the kernel takes cookies it did not send only when it is 2 (`sysctl -w net.ipv4.tcp_syncookies=2`)",
                self.syncookies
            ));
        }
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        let space = self.rmem_max_tcp.max(self.rmem_max).max(1);
        let wscale = (space.ilog2().saturating_sub(15)).min(MAX_WSCALE);
        Ok(Cookies {
            cookie: Cookie {
                mss: u16::try_from(mtu.saturating_sub(40)).unwrap_or(u16::MAX),
                wscale: u8::try_from(wscale).unwrap_or(0),
                pad: 0,
            },
            flags: flag(self.timestamps == 2, GUARD_COOKIE_TS)
                | flag(self.sack, GUARD_COOKIE_SACK)
                | flag(self.window_scaling, GUARD_COOKIE_WSCALE),
        })
    }

    /// Why cookies go without window scale and SACK, if they do.
    #[must_use]
    pub fn degraded(&self) -> Option<String> {
        (self.timestamps != 2).then(|| {
            format!(
                "net.ipv4.tcp_timestamps is {}, not 2: XDP SYN cookies carry no timestamp, so those connections get no window scaling and no SACK",
                self.timestamps
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::TcpSysctls;
    use balancer_common::guard::{GUARD_COOKIE_SACK, GUARD_COOKIE_TS, GUARD_COOKIE_WSCALE};

    fn host() -> TcpSysctls {
        TcpSysctls {
            syncookies: 2,
            timestamps: 2,
            sack: true,
            window_scaling: true,
            rmem_max_tcp: 6_291_456,
            rmem_max: 212_992,
        }
    }

    #[test]
    fn the_window_scale_follows_the_largest_receive_buffer() {
        let c = host().cookies(1500).expect("usable");
        assert_eq!((c.cookie.mss, c.cookie.wscale), (1460, 7));
        assert_eq!(
            c.flags,
            GUARD_COOKIE_TS | GUARD_COOKIE_SACK | GUARD_COOKIE_WSCALE
        );
        let big = TcpSysctls {
            rmem_max: 1 << 40,
            ..host()
        };
        assert_eq!(big.cookies(9000).expect("usable").cookie.wscale, 14);
    }

    #[test]
    fn cookies_need_mode_2_and_timestamps_without_offsets() {
        let e = TcpSysctls {
            syncookies: 1,
            ..host()
        }
        .cookies(1500)
        .expect_err("mode 1");
        assert!(e.contains("tcp_syncookies is 1"), "{e}");
        let offsets = TcpSysctls {
            timestamps: 1,
            ..host()
        };
        assert_eq!(
            offsets.cookies(1500).expect("usable").flags & GUARD_COOKIE_TS,
            0
        );
        assert!(offsets.degraded().is_some());
    }

    #[test]
    fn this_hosts_sysctls_read() {
        let s = TcpSysctls::read().expect("sysctls");
        assert!(s.rmem_max_tcp > 0 && s.rmem_max > 0);
    }
}
