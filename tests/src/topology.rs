//! The standard test network:
//!
//! ```text
//!  client ns                 balancer ns                         backend ns i
//!  eth0 198.18.0.1/24  <-veth->  eth0 198.18.0.2/24  (VIPs are routed via .2, not on-link)
//!       fd00:c::1/64             fd00:c::2/64
//!                                lo   VIPs 198.18.0.10, fd00::10
//!                                br0  198.18.1.1/24, fd00:1::1/64 <-veth-> eth0 198.18.1.(11+i)/24
//!                                                                               fd00:1::(11+i)/64
//! ```
//!
//! The client reaches the VIPs through the balancer (its default route, which
//! exists only inside the client namespace). Nothing touches the root namespace.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

use crate::{netns::Netns, process::Process};

/// IPv4 VIP.
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// IPv6 VIP.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
/// The client's first address.
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A client, a balancer and `n` backends, plus a scratch directory.
pub struct Topology {
    /// Backends (dropped first: their processes go before the bridge).
    pub backends: Vec<Netns>,
    /// The balancer's namespace.
    pub lb: Netns,
    /// The client's namespace.
    pub client: Netns,
    /// Scratch space: configs, logs, test data.
    pub dir: tempfile::TempDir,
}

impl Topology {
    /// Builds the network with `backends` backend namespaces.
    #[must_use]
    pub fn new(backends: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("balancer-e2e-")
            .tempdir()
            .expect("tempdir");
        let client = Netns::new("c");
        let lb = Netns::new("lb");
        veth(&client, "eth0", &lb, "eth0");
        client.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
        client.ip(&["-6", "addr", "add", "fd00:c::1/64", "dev", "eth0", "nodad"]);
        client.ip(&["link", "set", "eth0", "up"]);
        client.ip(&["route", "add", "default", "via", "198.18.0.2"]);
        client.ip(&["-6", "route", "add", "default", "via", "fd00:c::2"]);
        lb.ip(&["addr", "add", "198.18.0.2/24", "dev", "eth0"]);
        lb.ip(&["-6", "addr", "add", "fd00:c::2/64", "dev", "eth0", "nodad"]);
        lb.ip(&["link", "set", "eth0", "up"]);
        lb.ip(&["addr", "add", "198.18.0.10/32", "dev", "lo"]);
        lb.ip(&["-6", "addr", "add", "fd00::10/128", "dev", "lo", "nodad"]);
        lb.ip(&["link", "add", "br0", "type", "bridge"]);
        lb.ip(&["addr", "add", "198.18.1.1/24", "dev", "br0"]);
        lb.ip(&["-6", "addr", "add", "fd00:1::1/64", "dev", "br0", "nodad"]);
        lb.ip(&["link", "set", "br0", "up"]);
        let mut list = Vec::new();
        for i in 0..backends {
            let b = Netns::new(&format!("b{}", i + 1));
            let port = format!("b{}", i + 1);
            veth(&b, "eth0", &lb, &port);
            lb.ip(&["link", "set", &port, "master", "br0", "up"]);
            b.ip(&[
                "addr",
                "add",
                &format!("{}/24", backend_v4(i)),
                "dev",
                "eth0",
            ]);
            b.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{}/64", backend_v6(i)),
                "dev",
                "eth0",
                "nodad",
            ]);
            b.ip(&["link", "set", "eth0", "up"]);
            list.push(b);
        }
        Self {
            backends: list,
            lb,
            client,
            dir,
        }
    }

    /// Adds `n` more IPv4 addresses to the client (198.18.0.100 upwards), for
    /// tests that need many distinct sources.
    #[must_use]
    pub fn add_client_addresses(&self, n: u8) -> Vec<Ipv4Addr> {
        (0..n)
            .map(|i| {
                let a = Ipv4Addr::new(198, 18, 0, 100 + i);
                self.client
                    .ip(&["addr", "add", &format!("{a}/24"), "dev", "eth0"]);
                a
            })
            .collect()
    }

    /// Lets the client reach the backends without a proxy: IPv4 forwarding
    /// in the balancer namespace and, in each backend, a route back to the
    /// client subnet through the bridge. Proxies keep working alongside (the
    /// VIPs stay local to the balancer namespace).
    pub fn route_direct(&self) {
        self.lb.sysctl("net.ipv4.ip_forward", "1");
        for b in &self.backends {
            b.ip(&["route", "add", "198.18.0.0/24", "via", "198.18.1.1"]);
        }
    }

    /// Scratch directory path.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `yaml` as the balancer config, starts the balancer in its
    /// namespace and waits until `listeners` listeners are serving.
    #[must_use]
    pub fn start_balancer(&self, yaml: &str, listeners: usize) -> Process {
        self.start_balancer_bin(&crate::balancer_bin(), yaml, listeners)
    }

    /// [`Topology::start_balancer`] with a chosen binary (benchmarks run the
    /// release build).
    #[must_use]
    pub fn start_balancer_bin(&self, bin: &Path, yaml: &str, listeners: usize) -> Process {
        crate::start_balancer(&self.lb, self.dir.path(), bin, yaml, listeners)
    }

    /// A UDP server on backend `i`'s port 53, answering each datagram with
    /// `backend-<i+1>=<datagram>`; bound before this returns.
    #[must_use]
    pub fn udp_backend(&self, i: usize) -> Process {
        crate::scripts::udp_named(
            &self.backends[i],
            backend_addr(i, 53, false).ip(),
            53,
            &format!("backend-{}", i + 1),
            &self.path(&format!("udp-{i}.log")),
        )
    }
}

/// IPv4 address of backend `i` (0-based).
#[must_use]
pub fn backend_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + i as u8)
}

/// IPv6 address of backend `i` (0-based): `fd00:1::11`, `fd00:1::12`, ...
#[must_use]
pub fn backend_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x11 + i as u16)
}

/// `ip:port` of backend `i`, IPv4 or IPv6.
#[must_use]
pub fn backend_addr(i: usize, port: u16, v6: bool) -> SocketAddr {
    let ip: IpAddr = if v6 {
        backend_v6(i).into()
    } else {
        backend_v4(i).into()
    };
    SocketAddr::new(ip, port)
}

fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    crate::netns::ip(&[
        "link",
        "add",
        a_name,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
    ]);
}

/// A file of `size` pseudo-random bytes (fast to make, incompressible enough
/// for a transfer test); returns its path.
#[must_use]
pub fn random_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl enc -aes-128-ctr -pass pass:balancer -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c {size} > {}",
            path.display()
        ))
        .status()
        .expect("make random file");
    assert!(status.success());
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        size,
        "random file size"
    );
    path
}
