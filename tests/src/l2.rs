//! The one-segment network the XDP plane needs: `XDP_TX` sends a packet
//! back out of the interface it came in on, so client, balancer and
//! backends share one L2 segment (a bridge in a switch namespace).
//!
//! ```text
//!   client 198.18.0.1 --+
//!   balancer 198.18.0.2 -+-- br0 (switch ns) --+-- backend i 198.18.0.(11+i), VIP on lo
//! ```
//!
//! The VIP (198.18.100.10) is routed by the client via the balancer and held
//! by every backend on its loopback, so backends answer the client directly
//! (direct server return) and never answer ARP for it.
//!
//! [`L2::routed`] puts the backends on a second segment instead, behind the
//! balancer's `eth1` (198.18.2.2): the XDP program redirects their frames
//! there through its device map, and their answers reach the client through
//! the balancer's ordinary IP forwarding.
//!
//! ```text
//!   client --+-- br0 --+-- balancer eth0        eth1 --+-- br1 --+-- backend i 198.18.2.(11+i)
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{netns::Netns, process::Process};

/// The VIP of XDP tests.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 10);
/// The IPv6 VIP of XDP tests.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 0x10);

/// Client, balancer and backends on one bridged segment.
pub struct L2 {
    /// The XDP programs on the balancer's bridge ports (see [`L2::new`]);
    /// stopped first.
    napi: Vec<Process>,
    /// Backends, dropped first.
    pub backends: Vec<Netns>,
    /// The balancer's namespace; its `eth0` is where XDP attaches.
    pub lb: Netns,
    /// The client's namespace.
    pub client: Netns,
    /// The switch.
    pub switch: Netns,
    /// Scratch space.
    pub dir: tempfile::TempDir,
}

/// Address of backend `i` on the segment.
#[must_use]
pub fn backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + i as u8)
}

/// Address of backend `i` on the second segment of [`L2::routed`].
#[must_use]
pub fn routed_backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, 11 + i as u8)
}

/// IPv6 address of backend `i` on the segment: `fd00:2::11`, ...
#[must_use]
pub fn backend6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 0x11 + i as u16)
}

/// A config with one `xdp` TCP listener on the VIP's port 80 in DSR mode,
/// its Maglev pool of backends `0..n` on port 80, and `xdp_extra` (such as
/// `, pin_dir: "..."`) appended inside the `xdp` section.
#[must_use]
pub fn dsr_config(n: usize, xdp_extra: &str) -> String {
    let backends = (0..n).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "      - {{ address: \"{}:80\" }}", backend(i));
        s
    });
    format!(
        "version: 1
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: p }}
pools:
  - name: p
    algorithm: maglev
    backends:
{backends}xdp: {{ interface: eth0, forwarding: dsr{xdp_extra} }}
"
    )
}

impl L2 {
    /// Builds the segment with `n` backends.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self::build(n, false)
    }

    /// Builds the two segments of the module docs, with `n` backends
    /// behind the balancer's `eth1`.
    #[must_use]
    pub fn routed(n: usize) -> Self {
        Self::build(n, true)
    }

    fn build(n: usize, routed: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("balancer-l2-")
            .tempdir()
            .expect("tempdir");
        let switch = Netns::new("sw");
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        switch.ip(&["link", "set", "br0", "up"]);
        let client = Netns::new("c");
        let lb = Netns::new("lb");
        attach(&switch, "pc", &client, "198.18.0.1/24");
        attach(&switch, "plb", &lb, "198.18.0.2/24");
        if routed {
            switch.ip(&["link", "add", "br1", "type", "bridge"]);
            switch.ip(&["link", "set", "br1", "up"]);
            link(&switch, "br1", "plb1", &lb, "eth1", "198.18.2.2/24");
            lb.sysctl("net.ipv4.ip_forward", "1");
            for scope in ["all", "default", "eth0", "eth1"] {
                lb.sysctl(&format!("net.ipv4.conf.{scope}.rp_filter"), "0");
            }
        }
        client.ip(&["-6", "addr", "add", "fd00:2::1/64", "dev", "eth0", "nodad"]);
        lb.ip(&["-6", "addr", "add", "fd00:2::2/64", "dev", "eth0", "nodad"]);
        // veth hands the client's TCP/UDP checksums to "hardware"; XDP_TX
        // turns the packet into a raw frame and that promise is lost, so
        // backends would see bad checksums. A real NIC always delivers
        // complete ones; make the client compute them.
        let _ = client.run("ethtool", &["-K", "eth0", "tx", "off"]);
        // Frames the balancer sends with XDP_TX arrive at this port, and a
        // veth only takes XDP frames in when the receiving side runs NAPI.
        // Any XDP program turns NAPI on (toggling GRO did not here); ours is
        // the decapsulator with an endpoint no packet carries, which passes
        // every frame unchanged.
        let mut napi = vec![start_pass_through(&switch, "plb", dir.path())];
        if routed {
            napi.push(start_pass_through(&switch, "plb1", dir.path()));
        }
        client.ip(&["route", "add", &format!("{VIP}/32"), "via", "198.18.0.2"]);
        client.ip(&[
            "-6",
            "route",
            "add",
            &format!("{VIP6}/128"),
            "via",
            "fd00:2::2",
        ]);
        let mut backends = Vec::new();
        for i in 0..n {
            let b = Netns::new(&format!("b{}", i + 1));
            let port = format!("pb{}", i + 1);
            if routed {
                link(
                    &switch,
                    "br1",
                    &port,
                    &b,
                    "eth0",
                    &format!("{}/24", routed_backend(i)),
                );
                b.ip(&["route", "add", "default", "via", "198.18.2.2"]);
            } else {
                attach(&switch, &port, &b, &format!("{}/24", backend(i)));
            }
            b.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
            b.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{}/64", backend6(i)),
                "dev",
                "eth0",
                "nodad",
            ]);
            b.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{VIP6}/128"),
                "dev",
                "lo",
                "nodad",
            ]);
            backends.push(b);
        }
        Self {
            napi,
            backends,
            lb,
            client,
            switch,
            dir,
        }
    }

    /// Starts the balancer with `yaml` and waits for `listeners` listeners.
    #[must_use]
    pub fn start_balancer(&self, yaml: &str, listeners: usize) -> Process {
        crate::start_balancer(
            &self.lb,
            self.dir.path(),
            &crate::balancer_bin(),
            yaml,
            listeners,
        )
    }

    /// nginx on every backend, listening on the VIP's port 80 (the VIP is
    /// on each backend's loopback) and answering with `backend-<i+1>`.
    #[must_use]
    pub fn nginx_on_vip(&self) -> Vec<Process> {
        self.backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                crate::nginx::start(
                    b,
                    self.dir.path(),
                    &format!("backend-{}", i + 1),
                    &[Self::vip(80)],
                )
            })
            .collect()
    }

    /// nginx on backends `0..n`, on the VIP (for DSR) and on the backend's
    /// own IPv4 address, and its IPv6 one with `v6` (where the proxy plane
    /// and health checks reach it), answering `backend-<i+1>`.
    #[must_use]
    pub fn nginx_on_vip_and_addresses(&self, n: usize, v6: bool) -> Vec<Process> {
        (0..n)
            .map(|i| {
                let mut listen = vec![Self::vip(80), SocketAddr::from((backend(i), 80))];
                if v6 {
                    listen.push(SocketAddr::from((IpAddr::V6(backend6(i)), 80)));
                }
                crate::nginx::start(
                    &self.backends[i],
                    self.dir.path(),
                    &format!("backend-{}", i + 1),
                    &listen,
                )
            })
            .collect()
    }

    /// Gives the switch port facing the client NAPI, so frames the client
    /// sends as XDP live frames (a flood generator) are taken in.
    pub fn napi_on_client_port(&mut self) {
        self.napi
            .push(start_pass_through(&self.switch, "pc", self.dir.path()));
    }

    /// The MAC address of the balancer's `eth0`.
    #[must_use]
    pub fn lb_mac(&self) -> String {
        self.lb
            .run("cat", &["/sys/class/net/eth0/address"])
            .trim()
            .to_owned()
    }

    /// Runs `balancer decap` on backend `i`'s `eth0`.
    #[must_use]
    pub fn start_decap(&self, i: usize) -> Process {
        let mut cmd = self.backends[i].command(crate::balancer_bin().to_str().expect("utf-8"));
        cmd.args(["decap", "--interface", "eth0"])
            .env("RUST_LOG", "info");
        let mut p = Process::spawn("decap", cmd, self.dir.path().join(format!("decap-{i}.log")));
        p.wait_for("decapsulating", 1, std::time::Duration::from_secs(10));
        p
    }

    /// `VIP:port`.
    #[must_use]
    pub fn vip(port: u16) -> SocketAddr {
        (VIP, port).into()
    }

    /// `[VIP6]:port`.
    #[must_use]
    pub fn vip6(port: u16) -> SocketAddr {
        (IpAddr::V6(VIP6), port).into()
    }
}

/// A veth from the switch's bridge (port `port`) to `ns`'s `eth0` with `addr`.
fn attach(switch: &Netns, port: &str, ns: &Netns, addr: &str) {
    link(switch, "br0", port, ns, "eth0", addr);
}

/// A veth from `bridge` in the switch (port `port`) to `ns`'s `dev` with `addr`.
fn link(switch: &Netns, bridge: &str, port: &str, ns: &Netns, dev: &str, addr: &str) {
    crate::netns::ip(&[
        "link",
        "add",
        port,
        "netns",
        switch.name(),
        "type",
        "veth",
        "peer",
        "name",
        dev,
        "netns",
        ns.name(),
    ]);
    switch.ip(&["link", "set", port, "master", bridge, "up"]);
    ns.ip(&["addr", "add", addr, "dev", dev]);
    ns.ip(&["link", "set", dev, "up"]);
}

/// A pass-through XDP program on `interface` in `ns` (see [`L2::new`]):
/// the balancer's decapsulator with an endpoint no packet carries.
#[must_use]
pub fn start_pass_through(ns: &Netns, interface: &str, dir: &std::path::Path) -> Process {
    let mut cmd = ns.command(crate::balancer_bin().to_str().expect("utf-8"));
    cmd.args([
        "decap",
        "--interface",
        interface,
        "--endpoint",
        "198.18.255.255",
    ])
    .env("RUST_LOG", "info");
    let mut p = Process::spawn("napi", cmd, dir.join(format!("napi-{interface}.log")));
    p.wait_for("decapsulating", 1, std::time::Duration::from_secs(10));
    p
}
