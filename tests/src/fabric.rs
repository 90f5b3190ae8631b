//! Scale-out: several balancer hosts behind one router that spreads flows
//! over them by ECMP, each host announcing its VIPs to the router over BGP
//! with BIRD 2, as `config/bird/` describes (those files run here, with
//! each host's address filled in).
//!
//! ```text
//!                                   router (BIRD, ECMP, L4 hash)
//!   client 198.18.10.2 --- eth1 198.18.10.1    br0 198.18.20.1 --+-- host i 198.18.20.(11+i): balancer + BIRD, vip0
//!          fd00:10::2           fd00:10::1         fd00:20::1    +-- backend i 198.18.20.(21+i), VIP on lo
//! ```
//!
//! Hosts and backends share the router's bridge, so a host forwards a
//! VIP's packets to a backend by `XDP_TX` (direct server return) and the
//! backend answers the client through the router. The router installs one
//! route per VIP with a next hop per announcing host.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{bpffs::BpfFs, netns::Netns, process::Process};

/// The VIP the hosts announce.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 10);
/// The IPv6 VIP.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 0x10);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);
/// The client's IPv6 address.
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 2);

/// Host `i`'s address on the router's segment.
#[must_use]
pub fn host(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 20, 11 + i as u8)
}

/// Host `i`'s IPv6 address.
#[must_use]
pub fn host6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 0x11 + i as u16)
}

/// Backend `i`'s address.
#[must_use]
pub fn backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 20, 21 + i as u8)
}

/// Backend `i`'s IPv6 address.
#[must_use]
pub fn backend6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 0x21 + i as u16)
}

/// The example BIRD config `name` from `config/bird/`, with the `define`
/// lines in `values` set, logging to stderr (a test reads it).
#[must_use]
pub fn bird_config(name: &str, values: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/bird")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = String::from("log stderr all;\n");
    for line in text.lines() {
        let set = values.iter().find(|(key, _)| {
            line.strip_prefix("define ")
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(k, _)| k.trim() == *key)
        });
        if let Some((key, value)) = set {
            let _ = writeln!(out, "define {key} = {value};");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// One balancer host.
pub struct Host {
    /// Its BIRD, while running.
    pub bird: Option<Process>,
    /// Its balancer daemon, while running.
    pub balancer: Option<Process>,
    /// Its namespace; `eth0` faces the router.
    pub ns: Netns,
    /// Its config file and state directory live here.
    pub dir: PathBuf,
}

/// Client, router, hosts and backends of the module docs.
pub struct Fabric {
    /// The XDP programs on the router's ports facing the hosts (a veth
    /// takes `XDP_TX` frames in only with NAPI on; see [`crate::l2`]).
    _napi: Vec<Process>,
    /// The router's BIRD.
    router_bird: Option<Process>,
    /// Backends' nginx, stopped before the namespaces go.
    pub servers: Vec<Process>,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The backends.
    pub backends: Vec<Netns>,
    /// The client.
    pub client: Netns,
    /// The router, holding the bridge.
    pub router: Netns,
    /// Where the hosts' XDP pins live (outside every namespace).
    pub bpffs: BpfFs,
    /// Scratch space.
    pub dir: tempfile::TempDir,
}

impl Fabric {
    /// Builds the network with `hosts` hosts and `backends` backends, each
    /// backend's nginx answering with its name on the VIPs' port 80 and on
    /// its own addresses; no balancer or BIRD runs yet.
    #[must_use]
    pub fn new(hosts: usize, backends: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("balancer-fabric-")
            .tempdir()
            .expect("tempdir");
        let router = Netns::new("rt");
        router.ip(&["link", "add", "br0", "type", "bridge"]);
        router.ip(&["link", "set", "br0", "up"]);
        router.ip(&["addr", "add", "198.18.20.1/24", "dev", "br0"]);
        router.ip(&["-6", "addr", "add", "fd00:20::1/64", "dev", "br0", "nodad"]);
        for (key, value) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv6.fib_multipath_hash_policy", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            router.sysctl(key, value);
        }
        let client = Netns::new("cl");
        veth(&router, "eth1", &client, "eth0");
        router.ip(&["addr", "add", "198.18.10.1/24", "dev", "eth1"]);
        router.ip(&["-6", "addr", "add", "fd00:10::1/64", "dev", "eth1", "nodad"]);
        client.ip(&["addr", "add", "198.18.10.2/24", "dev", "eth0"]);
        client.ip(&["-6", "addr", "add", "fd00:10::2/64", "dev", "eth0", "nodad"]);
        client.ip(&["route", "add", "default", "via", "198.18.10.1"]);
        client.ip(&["-6", "route", "add", "default", "via", "fd00:10::1"]);
        // veth leaves checksums to "hardware", which XDP_TX loses (see l2).
        let _ = client.run("ethtool", &["-K", "eth0", "tx", "off"]);
        let mut napi = Vec::new();
        let mut all_hosts = Vec::new();
        for i in 0..hosts {
            let ns = Netns::new(&format!("h{}", i + 1));
            let port = format!("ph{}", i + 1);
            on_bridge(&router, &port, &ns, (host(i), host6(i)));
            ns.ip(&["route", "add", "default", "via", "198.18.20.1"]);
            ns.ip(&["-6", "route", "add", "default", "via", "fd00:20::1"]);
            // A proxy listener binds its VIP before the VIP is announced.
            ns.sysctl("net.ipv4.ip_nonlocal_bind", "1");
            ns.sysctl("net.ipv6.ip_nonlocal_bind", "1");
            napi.push(crate::l2::start_pass_through(&router, &port, dir.path()));
            let host_dir = dir.path().join(format!("h{}", i + 1));
            std::fs::create_dir_all(&host_dir).expect("host dir");
            all_hosts.push(Host {
                bird: None,
                balancer: None,
                ns,
                dir: host_dir,
            });
        }
        let mut all_backends = Vec::new();
        let mut servers = Vec::new();
        for i in 0..backends {
            let b = Netns::new(&format!("b{}", i + 1));
            on_bridge(
                &router,
                &format!("pb{}", i + 1),
                &b,
                (backend(i), backend6(i)),
            );
            b.ip(&["route", "add", "default", "via", "198.18.20.1"]);
            b.ip(&["-6", "route", "add", "default", "via", "fd00:20::1"]);
            b.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
            b.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{VIP6}/128"),
                "dev",
                "lo",
                "nodad",
            ]);
            servers.push(crate::nginx::start(
                &b,
                dir.path(),
                &format!("backend-{}", i + 1),
                &[
                    (VIP, 80).into(),
                    (IpAddr::V6(VIP6), 80).into(),
                    (backend(i), 80).into(),
                    (IpAddr::V6(backend6(i)), 80).into(),
                ],
            ));
            all_backends.push(b);
        }
        Self {
            _napi: napi,
            router_bird: None,
            servers,
            hosts: all_hosts,
            backends: all_backends,
            client,
            router,
            bpffs: BpfFs::new(),
            dir,
        }
    }

    /// Starts the router's BIRD from `config/bird/router.conf`.
    pub fn start_router_bird(&mut self) {
        let config = bird_config("router.conf", &[]);
        self.router_bird = Some(bird(&self.router, self.dir.path(), "router", &config));
    }

    /// Starts host `i`'s BIRD from `config/bird/host.conf`.
    pub fn start_host_bird(&mut self, i: usize) {
        let config = bird_config(
            "host.conf",
            &[
                ("HOST4", host(i).to_string()),
                ("HOST6", host6(i).to_string()),
            ],
        );
        let h = &mut self.hosts[i];
        h.bird = Some(bird(&h.ns, &h.dir, "host", &config));
    }

    /// Starts host `i`'s balancer with `yaml` (its `state_dir` and XDP
    /// `pin_dir` are the host's own), waiting for `listeners` listeners.
    pub fn start_balancer(&mut self, i: usize, yaml: &str, listeners: usize) {
        let pins = self.pin_dir(i);
        let yaml = yaml.replace("PIN_DIR", &pins.display().to_string());
        let h = &mut self.hosts[i];
        h.balancer = Some(crate::start_balancer(
            &h.ns,
            &h.dir,
            &crate::balancer_bin(),
            &yaml,
            listeners,
        ));
    }

    /// Host `i`'s XDP pin directory (on the test's own BPF filesystem).
    #[must_use]
    pub fn pin_dir(&self, i: usize) -> PathBuf {
        self.bpffs.path().join(format!("h{}", i + 1))
    }

    /// `balancer ARGS -c <host i's config>` in host `i`; its output.
    #[must_use]
    pub fn balancer(&self, i: usize, args: &[&str]) -> String {
        let h = &self.hosts[i];
        let config = h.dir.join("balancer.yaml");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-c", config.to_str().expect("utf-8")]);
        h.ns.run(crate::balancer_bin().to_str().expect("utf-8"), &all)
    }

    /// The next hops of the router's route to `vip`, as the kernel has them.
    #[must_use]
    pub fn next_hops(&self, vip: IpAddr) -> Vec<IpAddr> {
        let family = if vip.is_ipv6() { "-6" } else { "-4" };
        let out = self
            .router
            .run("ip", &[family, "route", "show", &vip.to_string()]);
        out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect()
    }

    /// Waits up to `limit` until the router's route to `vip` has exactly
    /// the hosts `want` as next hops; returns how long that took.
    #[expect(
        clippy::must_use_candidate,
        reason = "most callers only wait; some report how long it took"
    )]
    pub fn until_next_hops(&self, vip: IpAddr, want: &[usize], limit: Duration) -> Duration {
        let mut want: Vec<IpAddr> = want
            .iter()
            .map(|&i| {
                if vip.is_ipv6() {
                    IpAddr::V6(host6(i))
                } else {
                    IpAddr::V4(host(i))
                }
            })
            .collect();
        want.sort();
        let start = Instant::now();
        loop {
            let mut have = self.next_hops(vip);
            have.sort();
            if have == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "the router's next hops for {vip} are {have:?}, not {want:?}, after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The XDP program's `forward_dsr` counter on host `i` (packets it sent
    /// to backends), from `balancer status`.
    #[must_use]
    pub fn forwarded(&self, i: usize) -> u64 {
        let h = &self.hosts[i];
        let state = h.dir.join("state");
        // The status file is rewritten every second.
        std::thread::sleep(Duration::from_millis(1100));
        let text = h.ns.run(
            crate::balancer_bin().to_str().expect("utf-8"),
            &["status", "--state-dir", state.to_str().expect("utf-8")],
        );
        text.lines()
            .find_map(|l| l.trim().strip_prefix("forward_dsr"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `VIP:80` or `[VIP6]:80`.
    #[must_use]
    pub fn vip(v6: bool) -> SocketAddr {
        if v6 {
            (IpAddr::V6(VIP6), 80).into()
        } else {
            (VIP, 80).into()
        }
    }
}

/// A veth between `a` (`a_dev`) and `b` (`b_dev`), both up.
fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    crate::netns::ip(&[
        "link",
        "add",
        a_dev,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ]);
    a.ip(&["link", "set", a_dev, "up"]);
    b.ip(&["link", "set", b_dev, "up"]);
}

/// `ns`'s `eth0` on the router's bridge through port `port`, with `addrs`.
fn on_bridge(router: &Netns, port: &str, ns: &Netns, (v4, v6): (Ipv4Addr, Ipv6Addr)) {
    veth(router, port, ns, "eth0");
    router.ip(&["link", "set", port, "master", "br0"]);
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{v6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
}

/// BIRD in `ns` in the foreground with `config` (written to `dir`), its
/// control socket and log in `dir`; waits until it has read the config.
fn bird(ns: &Netns, dir: &Path, name: &str, config: &str) -> Process {
    let file = dir.join(format!("bird-{name}.conf"));
    std::fs::write(&file, config).expect("write bird config");
    let mut cmd = ns.command("bird");
    cmd.args(["-f", "-c"])
        .arg(&file)
        .arg("-s")
        .arg(dir.join(format!("bird-{name}.ctl")))
        .arg("-P")
        .arg(dir.join(format!("bird-{name}.pid")));
    let mut p = Process::spawn("bird", cmd, dir.join(format!("bird-{name}.log")));
    p.wait_for("Started", 1, Duration::from_secs(10));
    p
}
