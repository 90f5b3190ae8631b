//! The soak's network and what runs in it: the one-segment XDP network of
//! [`crate::l2`] with three backends, each running nginx (on the VIP for
//! DSR, and on its own address for the proxies) and a UDP server; packet
//! loss on every backend link (nftables `numgen random`, both ways); and
//! the balancer's config with every plane: an XDP VIP, a TCP proxy, an
//! HTTP listener (HTTP/1.1 and h2c), a TLS listener (HTTP/1.1 and HTTP/2
//! by ALPN) and a UDP proxy, all with health checks.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
};

use crate::{
    Process,
    certs::{Ca, Pair},
    l2::{L2, VIP, backend},
    netns::Netns,
    nginx, scripts,
};

/// The balancer's own address, where the proxies listen.
pub const LB: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Backends in the pools.
pub const BACKENDS: usize = 3;
/// The name the TLS listener's certificate carries.
pub const TLS_NAME: &str = "soak.example.test";
/// An address the guard changes deny and allow again (no client uses it).
pub const GUARDED: &str = "198.18.0.200";
/// How long an old daemon may take to finish after an upgrade.
pub const GRACE_S: u64 = 10;

/// Listener ports on [`LB`].
pub const PROXY_PORT: u16 = 8080;
/// The HTTP listener.
pub const HTTP_PORT: u16 = 8081;
/// The TLS listener.
pub const TLS_PORT: u16 = 8443;
/// The UDP proxy (and each backend's UDP server).
pub const UDP_PORT: u16 = 5300;

/// `ip:port` on the balancer.
#[must_use]
pub fn on_lb(port: u16) -> SocketAddr {
    (LB, port).into()
}

/// The balancer's config: every plane, health checks fast enough that a
/// stopped backend is out within a few seconds. `variant` changes the web
/// pool's weights, so each reload has something to apply.
#[must_use]
pub fn config(pin_dir: &Path, tls: &Pair, variant: usize) -> String {
    let list = |port: u16, weights: bool| {
        (0..BACKENDS)
            .map(|i| {
                let w = if weights && variant % 2 == 1 && i == 0 {
                    ", weight: 50"
                } else {
                    ""
                };
                format!("{{ address: \"{}:{port}\"{w} }}", backend(i))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let health = "{ kind: tcp, interval: 1s, timeout: 800ms, rise: 2, fall: 3 }";
    format!(
        "version: 1
shutdown_grace: {GRACE_S}s
listeners:
  - {{ name: vip, address: \"{VIP}:80\", protocol: tcp, mode: xdp, pool: vip }}
  - {{ name: tcp, address: \"{LB}:{PROXY_PORT}\", protocol: tcp, mode: proxy, pool: web }}
  - {{ name: web, address: \"{LB}:{HTTP_PORT}\", protocol: tcp, mode: http, pool: web }}
  - name: tls
    address: \"{LB}:{TLS_PORT}\"
    protocol: tcp
    mode: http
    pool: web
    tls:
      certificates: [{{ cert: {}, key: {} }}]
  - {{ name: dns, address: \"{LB}:{UDP_PORT}\", protocol: udp, mode: proxy, pool: dns, idle_timeout: 10s }}
pools:
  - name: vip
    algorithm: maglev
    health: {health}
    backends: [{}]
  - name: web
    health: {{ kind: http, path: /, interval: 1s, timeout: 800ms, rise: 2, fall: 3 }}
    backends: [{}]
  - name: dns
    health: {{ kind: udp, send: health, interval: 1s, timeout: 800ms, rise: 2, fall: 3 }}
    backends: [{}]
xdp: {{ interface: eth0, forwarding: dsr, pin_dir: \"{}\" }}
",
        tls.cert.display(),
        tls.key.display(),
        list(80, false),
        list(PROXY_PORT, true),
        list(UDP_PORT, false),
        pin_dir.display()
    )
}

/// The test CA and the TLS listener's certificate, made in `dir`.
#[must_use]
pub fn certificates(dir: &Path) -> (Ca, Pair) {
    let ca = Ca::new(&dir.join("certs"));
    let pair = ca.server("soak", &[TLS_NAME]);
    (ca, pair)
}

/// Drops `permille` of the frames each way on every backend's link, in the
/// switch's bridge (dropped in a backend's own output hook instead, a
/// datagram's sender would get EPERM, which a lossy wire never says).
pub fn packet_loss(t: &L2, permille: u32) {
    if permille == 0 {
        return;
    }
    nft(&t.switch, &["add", "table", "bridge", "soak"]);
    nft(
        &t.switch,
        &[
            "add",
            "chain",
            "bridge",
            "soak",
            "forward",
            "{ type filter hook forward priority 0; }",
        ],
    );
    for side in ["iifname", "oifname"] {
        nft(
            &t.switch,
            &[
                "add",
                "rule",
                "bridge",
                "soak",
                "forward",
                side,
                "pb*",
                "numgen",
                "random",
                "mod",
                "1000",
                "<",
                &permille.to_string(),
                "counter",
                "drop",
            ],
        );
    }
}

fn nft(ns: &Netns, args: &[&str]) {
    let out = ns.command("nft").args(args).output().expect("run nft");
    assert!(
        out.status.success(),
        "nft {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Frames the loss rules dropped, both ways, every backend.
#[must_use]
pub fn dropped(t: &L2) -> u64 {
    let listed = t.switch.run("nft", &["list", "table", "bridge", "soak"]);
    listed
        .split("packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// What serves on backend `i`: nginx (the VIP's port 80 for DSR, its own
/// address on 80 for health checks and on [`PROXY_PORT`] for the proxies)
/// and a UDP server on [`UDP_PORT`].
pub struct Backend {
    /// nginx.
    pub nginx: Process,
    /// The UDP server.
    pub udp: Process,
}

/// Starts backend `i`'s servers and waits until they listen.
#[must_use]
pub fn start_backend(t: &L2, i: usize, generation: usize) -> Backend {
    let ns = &t.backends[i];
    let own = backend(i);
    let name = format!("backend-{}", i + 1);
    let nginx = nginx::start(
        ns,
        t.dir.path(),
        &name,
        &[L2::vip(80), (own, 80).into(), (own, PROXY_PORT).into()],
    );
    let udp = scripts::udp_named(
        ns,
        own.into(),
        UDP_PORT,
        &name,
        &t.dir.path().join(format!("udp-{i}-{generation}.log")),
    );
    Backend { nginx, udp }
}
