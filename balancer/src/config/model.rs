//! Stage two: the validated configuration. Everything here has already been
//! checked, so the runtime never re-validates: addresses are `SocketAddr`,
//! durations are `Duration`, pool references are indices, limits are
//! non-zero where zero would be meaningless.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    time::Duration,
};

use serde::Deserialize;

use super::http::{HttpListener, PoolHttp};

/// A validated configuration, ready to build a runtime from.
#[derive(Clone, Debug)]
pub struct Config {
    /// Admin API listen address.
    pub admin: SocketAddr,
    /// File holding the bearer token the admin API requires, if any.
    pub admin_token_file: Option<std::path::PathBuf>,
    /// The admin API may listen beyond loopback without a token
    /// (`admin.insecure`); warned about at every start.
    pub admin_insecure: bool,
    /// `GET /metrics` is served without the token (`admin.public_metrics`),
    /// as scrapers expect.
    pub admin_public_metrics: bool,
    /// Listeners in file order.
    pub listeners: Vec<Listener>,
    /// Pools in file order; listeners refer to them by index.
    pub pools: Vec<Pool>,
    /// XDP settings, when the file has an `xdp` section.
    pub xdp: Option<Xdp>,
    /// Guard settings (the XDP program enforces them).
    pub guard: Guard,
    /// VIP announcements for scale-out, when configured.
    pub announce: Option<Announce>,
    /// How long open connections may finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// Where the daemon keeps `status.json` for `balancer status`.
    pub state_dir: std::path::PathBuf,
    /// Built-in demo backends (HTTP + UDP echo) the daemon starts itself.
    pub demo_backends: Vec<SocketAddr>,
}

/// Transport protocol of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Which data plane serves a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// XDP where it attaches, otherwise proxy.
    Auto,
    /// Kernel fast path only.
    Xdp,
    /// Userspace splice/UDP proxy.
    Proxy,
    /// Userspace HTTP routing.
    Http,
}

/// How a TCP proxy listener moves bytes between client and backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEngine {
    /// The faster engine as measured: splice, ahead of the sockmap relay on
    /// throughput and connection rate (`docs/bench/proxy.md`).
    #[default]
    Auto,
    /// splice(2) through pooled pipes, driven by the daemon.
    Splice,
    /// An `sk_skb` verdict program redirecting between the two sockets.
    Sockmap,
}

/// Backend selection algorithm of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each backend in turn.
    RoundRobin,
    /// Smooth weighted round robin (nginx's).
    WeightedRoundRobin,
    /// Fewest active connections relative to weight.
    LeastConnections,
    /// Hash of the client address.
    SourceHash,
    /// Maglev consistent hashing of the flow, the table the XDP path uses.
    Maglev,
    /// Power of two random choices by load.
    TwoChoices,
}

/// How the XDP path reaches backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarding {
    /// Rewrite MACs, backends answer directly.
    Dsr,
    /// Encapsulate IP-in-IP to the backend.
    Ipip,
}

/// How much the XDP programs report (`xdp.log`): rare events in the
/// kernel, bridged into the daemon's log. Levels as aya-log has them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum KernelLog {
    /// Nothing (the default).
    #[default]
    Off,
    /// States the daemon should never leave behind.
    Error,
    /// Also map writes that failed and packets that could not be forwarded.
    Warn,
    /// Also informational events (none yet).
    Info,
    /// Also expected but uncommon events (a flow outliving its backend).
    Debug,
    /// Everything.
    Trace,
}

impl KernelLog {
    /// Every level, quietest first.
    pub const ALL: [KernelLog; 6] = [
        KernelLog::Off,
        KernelLog::Error,
        KernelLog::Warn,
        KernelLog::Info,
        KernelLog::Debug,
        KernelLog::Trace,
    ];

    /// The value the programs compare against (`balancer_common::diag`).
    #[must_use]
    pub const fn gate(self) -> u32 {
        self as u32
    }

    /// The name the config, the CLI and the admin API use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            KernelLog::Off => "off",
            KernelLog::Error => "error",
            KernelLog::Warn => "warn",
            KernelLog::Info => "info",
            KernelLog::Debug => "debug",
            KernelLog::Trace => "trace",
        }
    }

    /// The level named `name`, if any.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl std::fmt::Display for KernelLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: a VIP:port, its protocol, plane and pool.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Unique name.
    pub name: String,
    /// Address clients connect to.
    pub address: SocketAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Data plane.
    pub mode: Mode,
    /// Index into [`Config::pools`]. Every listener but an `http` one has
    /// a pool; an `http` listener's takes the requests no route matches,
    /// and without one they get 404.
    pub pool: Option<usize>,
    /// TCP: concurrent connections; beyond it new ones are closed at once.
    pub max_connections: NonZeroU32,
    /// TCP: time allowed for one backend connect attempt.
    pub connect_timeout: Duration,
    /// TCP: connection idle time; UDP: session idle time.
    pub idle_timeout: Duration,
    /// TCP: backends tried before the client is closed.
    pub connect_attempts: NonZeroU32,
    /// How a TCP proxy connection's bytes are moved.
    pub proxy_engine: ProxyEngine,
    /// UDP: concurrent client sessions; the oldest idle one is evicted beyond it.
    pub max_sessions: NonZeroU32,
    /// This listener's own guard settings.
    pub guard: ListenerGuard,
    /// Routes and HTTP limits, for `http` listeners.
    pub http: Option<HttpListener>,
    /// Peers that must open each connection with a PROXY protocol header
    /// (`proxy_protocol.accept_from`); empty: no header is read from anyone.
    pub accept_proxy_from: Vec<Cidr>,
    /// TCP `proxy`/`auto`: routes by the SNI of the client's ClientHello,
    /// read without terminating TLS; empty: no ClientHello is read.
    pub sni_routes: Vec<super::tls::SniRoute>,
}

/// A pool of backends and how to choose among them.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Unique name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Maglev lookup table size (prime).
    pub maglev_table_size: u32,
    /// Active health check, if configured.
    pub health: Option<HealthCheck>,
    /// How long a backend that comes back up takes to reach its full
    /// weight (linearly); `None` gives it at once.
    pub slow_start: Option<Duration>,
    /// How long a drained or removed backend's connections may go on;
    /// `None` lets them end by themselves.
    pub drain_timeout: Option<Duration>,
    /// Backends: the file's, in file order, then the discovered ones.
    /// Empty only for a pool with `discover` that has found none yet.
    pub backends: Vec<Backend>,
    /// How the HTTP layer speaks to the backends.
    pub http: PoolHttp,
    /// The PROXY header sent first on every connection to a backend.
    pub proxy_protocol: Option<ProxyVersion>,
    /// TLS to the backends, from the HTTP layer.
    pub tls: Option<super::tls::PoolTls>,
    /// Where more backends come from; they are added to `backends` as
    /// they are found ([`crate::discover`]).
    pub discover: Option<super::discover::Discover>,
}

/// `pools[].proxy_protocol`: the version of the PROXY header sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    /// Text.
    V1,
    /// Binary, with the ALPN and SNI of a TLS client as TLVs.
    V2,
}

/// One backend of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Where to connect.
    pub address: SocketAddr,
    /// Relative weight; 0 drains (no new flows).
    pub weight: u32,
    /// The config file, or the discovery source that found it.
    pub origin: super::discover::Origin,
}

/// Active health-check settings: the timing every kind shares, and the
/// probe, which carries the settings of its own kind only.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    /// What one check sends and expects.
    pub probe: Probe,
    /// Time between checks.
    pub interval: Duration,
    /// Time allowed per check.
    pub timeout: Duration,
    /// Consecutive successes to mark a backend up.
    pub rise: NonZeroU32,
    /// Consecutive failures to mark a backend down.
    pub fall: NonZeroU32,
    /// Each check waits `interval` plus or minus up to this much, so the
    /// checks of many backends do not fire in lockstep.
    pub jitter: Duration,
    /// Whether failures the proxies see (connect refused, timeouts) count
    /// toward `fall` like failed checks.
    pub passive: bool,
}

/// One kind of active check, with the settings only that kind reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// TCP connect.
    Tcp,
    /// HTTP request whose status must fall in a range.
    Http(HttpProbe),
    /// UDP datagram that must be answered.
    Udp(UdpProbe),
}

/// An HTTP check's request and accepted answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// HTTP method (`GET`, `HEAD`, ...).
    pub method: String,
    /// Request path.
    pub path: String,
    /// `Host` header; `None` sends the backend's address.
    pub host: Option<String>,
    /// Accepted status codes, inclusive.
    pub expect_status: (u16, u16),
}

/// A UDP check's payload and expected answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpProbe {
    /// Payload to send.
    pub send: String,
    /// Text the reply must contain; `None` accepts any reply.
    pub expect: Option<String>,
}

/// XDP data-plane settings.
#[derive(Clone, Debug)]
pub struct Xdp {
    /// Interface the program attaches to.
    pub interface: String,
    /// Forwarding mode.
    pub forwarding: Forwarding,
    /// Flow-table entries.
    pub flow_table_size: NonZeroU32,
    /// Directory on a BPF filesystem where the maps are pinned, so a
    /// restarted daemon re-adopts the flow table and counters.
    pub pin_dir: std::path::PathBuf,
    /// What the programs report into the daemon's log.
    pub log: KernelLog,
}

/// Guard settings, enforced in XDP in front of every listener.
#[derive(Clone, Debug)]
pub struct Guard {
    /// Sources dropped first.
    pub deny: Vec<Cidr>,
    /// When non-empty, only these sources reach listeners (a listener's own
    /// allow list replaces it for that listener).
    pub allow: Vec<Cidr>,
    /// Extra martian sources, dropped like the built-in ones.
    pub martians: Vec<Cidr>,
    /// Per-source limits.
    pub per_source: PerSource,
    /// Record a TCP flow on its first non-SYN packet, not on the SYN.
    pub flow_on_ack: bool,
    /// What happens to a TCP RST or SYN-ACK whose flow is not in the table.
    pub stray_tcp: StrayTcp,
}

/// Per-source token buckets (IPv4 by address, IPv6 by /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerSource {
    /// New flows (TCP SYNs, UDP packets with no flow).
    pub syn: Option<Limit>,
    /// All packets.
    pub packets: Option<Limit>,
    /// Sources tracked at once (an LRU map: the oldest is forgotten).
    pub table_size: NonZeroU32,
}

/// A rate with its burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Events per second.
    pub rate: NonZeroU32,
    /// Events allowed at once; at least `rate`.
    pub burst: NonZeroU32,
}

/// Policy for TCP packets that need a flow and have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrayTcp {
    /// Drop them (counted as `guard_stray`).
    Drop,
    /// Place them by the ring like any packet, without recording a flow.
    Forward,
}

/// A listener's own guard settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerGuard {
    /// Sources dropped for this listener.
    pub deny: Vec<Cidr>,
    /// When non-empty, only these sources reach this listener.
    pub allow: Vec<Cidr>,
    /// New-flow ceiling: SYNs beyond it are dropped.
    pub new_flows: Option<Limit>,
    /// SYNs per second beyond which the XDP program answers them with SYN
    /// cookies instead of passing them to the listening socket.
    pub cookies_above: Option<Limit>,
}

/// An address prefix, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// The prefix as a 128-bit number and length, IPv4 as IPv4-mapped, so
    /// the two families never overlap.
    fn wide(&self) -> (u128, u32) {
        match self.addr.to_canonical() {
            IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), 96 + u32::from(self.prefix)),
            IpAddr::V6(a) => (u128::from(a), u32::from(self.prefix)),
        }
    }

    /// Whether every address of `other` is in `self`.
    #[must_use]
    pub fn contains(&self, other: &Cidr) -> bool {
        let (a, alen) = self.wide();
        let (b, blen) = other.wide();
        alen <= blen && (alen == 0 || (a ^ b) >> (128 - alen) == 0)
    }

    /// Whether `ip` is in `self`.
    #[must_use]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let max = if ip.to_canonical().is_ipv4() { 32 } else { 128 };
        self.contains(&Cidr {
            addr: ip.to_canonical(),
            prefix: max,
        })
    }

    /// Prefix length and 16-byte address as the XDP lists key them.
    #[must_use]
    pub fn mapped(&self) -> (u32, [u8; 16]) {
        let (a, len) = self.wide();
        (len, a.to_be_bytes())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Xdp => "xdp",
            Mode::Proxy => "proxy",
            Mode::Http => "http",
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::LeastConnections => "least_connections",
            Algorithm::SourceHash => "source_hash",
            Algorithm::Maglev => "maglev",
            Algorithm::TwoChoices => "two_choices",
        })
    }
}

/// The `announce` section: where announced VIP addresses live, and when a
/// VIP qualifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// The interface the daemon creates (or adopts) for the addresses.
    pub interface: String,
    /// A VIP is announced while its pool has at least this many up
    /// backends.
    pub min_healthy: u32,
}
