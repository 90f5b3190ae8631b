//! Facts about a network interface, read from sysfs and `getifaddrs`: index,
//! MAC, MTU and addresses. The XDP plane needs the MAC (source of forwarded
//! frames), the MTU (tunnel policy) and an address (tunnel source); the
//! decapsulator needs the addresses it should accept tunnels for.
#![expect(
    unsafe_code,
    reason = "getifaddrs(3) and if_indextoname(3) have no std wrapper"
)]

use std::{ffi::CStr, fs, io, net::IpAddr, path::PathBuf};

/// Why an interface could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No such interface in this network namespace.
    #[error("interface `{0}` does not exist in this network namespace")]
    Missing(String),
    /// A sysfs file could not be read or parsed.
    #[error("interface `{name}`: cannot read `{file}`: {source}")]
    Read {
        /// Interface.
        name: String,
        /// The sysfs file.
        file: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// What the XDP plane needs to know about its interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Hardware address.
    pub mac: [u8; 6],
    /// Largest IP packet the link carries.
    pub mtu: u32,
    /// Configured addresses.
    pub addrs: Vec<IpAddr>,
}

/// The name of the interface with index `index`, if there is one.
#[must_use]
pub fn name_of(index: u32) -> Option<String> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname(3)
    // requires; on success it holds a NUL-terminated name.
    let named = unsafe { libc::if_indextoname(index, buffer.as_mut_ptr()) };
    if named.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated string into `buffer`.
    let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

impl Interface {
    /// Reads `name`'s facts.
    pub fn read(name: &str) -> Result<Self, IfaceError> {
        let dir = PathBuf::from("/sys/class/net").join(name);
        if name.contains('/') || !dir.exists() {
            return Err(IfaceError::Missing(name.to_owned()));
        }
        let read = |file: &str| {
            let path = dir.join(file);
            fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|source| IfaceError::Read {
                    name: name.to_owned(),
                    file: path,
                    source,
                })
        };
        let bad = |file: &str, what: &str| IfaceError::Read {
            name: name.to_owned(),
            file: dir.join(file),
            source: io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
        };
        let mac_text = read("address")?;
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = mac_text.split(':').collect();
        if parts.len() != 6 {
            return Err(bad("address", "not a MAC address"));
        }
        for (i, p) in parts.iter().enumerate() {
            mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad("address", "not a MAC address"))?;
        }
        let mtu = read("mtu")?
            .parse()
            .map_err(|_| bad("mtu", "not a number"))?;
        let index = read("ifindex")?
            .parse()
            .map_err(|_| bad("ifindex", "not a number"))?;
        Ok(Self {
            name: name.to_owned(),
            index,
            mac,
            mtu,
            addrs: addresses(name)?,
        })
    }

    /// The first address of the family of `like`, for a tunnel source.
    #[must_use]
    pub fn address_like(&self, like: IpAddr) -> Option<IpAddr> {
        self.addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == like.is_ipv4() && !is_link_local(*a))
    }
}

fn is_link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// The addresses of interface `name`. The sockaddrs are read unaligned,
/// as the struct of the family each declares.
fn addresses(name: &str) -> Result<Vec<IpAddr>, IfaceError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return Err(IfaceError::Read {
            name: name.to_owned(),
            file: PathBuf::from("getifaddrs"),
            source: io::Error::last_os_error(),
        });
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if ifa.ifa_addr.is_null() || ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the
        // family it declares; we read only that family's struct.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = ifa.ifa_addr.cast::<libc::sockaddr_in>().read_unaligned();
                    out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                }
                libc::AF_INET6 => {
                    let sin6 = ifa.ifa_addr.cast::<libc::sockaddr_in6>().read_unaligned();
                    out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{IfaceError, Interface};

    #[test]
    fn loopback_is_readable() {
        let lo = Interface::read("lo").expect("lo");
        assert_eq!(lo.mac, [0; 6]);
        assert!(lo.mtu >= 1500);
        assert!(lo.addrs.contains(&"127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn missing_interface_is_named() {
        let e = Interface::read("nosuch0").expect_err("missing");
        assert!(matches!(e, IfaceError::Missing(ref n) if n == "nosuch0"));
        assert!(e.to_string().contains("`nosuch0`"));
    }
}
