//! What the validator fills in for every key the file leaves out, named in
//! one place (sozu's `DEFAULT_*`) so the documentation, the validator and
//! the model's `Default` impls (here, so the model needs no defaults of
//! its own) cannot drift apart.

use std::{num::NonZeroU32, time::Duration};

use super::{
    http::HttpLimits,
    model::{Algorithm, Forwarding, Guard, Mode, PerSource, StrayTcp},
};

/// Admin API listen address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9900";
/// Directory for the daemon's status snapshot.
pub const DEFAULT_STATE_DIR: &str = "/run/balancer";
/// How long open connections may finish after SIGINT/SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A listener's data plane.
pub const DEFAULT_MODE: Mode = Mode::Auto;
/// Concurrent connections per TCP listener.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// Concurrent sessions per UDP listener.
pub const DEFAULT_MAX_SESSIONS: u64 = 10_000;
/// Time allowed for one backend connect attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backends tried before a TCP client is closed.
pub const DEFAULT_CONNECT_ATTEMPTS: u64 = 3;
/// Idle time of a TCP connection.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_mins(5);
/// Idle time of a UDP session.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pool's selection algorithm.
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::WeightedRoundRobin;
/// Maglev table size (prime).
pub const DEFAULT_MAGLEV_TABLE: u64 = 65_537;
/// Backend weight.
pub const DEFAULT_WEIGHT: u32 = 100;

/// Time between health checks.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Time allowed per health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// The jitter is the interval divided by this.
pub const DEFAULT_JITTER_DIVISOR: u32 = 10;
/// Consecutive successes that mark a backend up.
pub const DEFAULT_RISE: u64 = 2;
/// Consecutive failures that mark a backend down.
pub const DEFAULT_FALL: u64 = 3;
/// Whether proxy-seen failures count toward `fall`.
pub const DEFAULT_PASSIVE: bool = true;
/// HTTP check path.
pub const DEFAULT_HTTP_PATH: &str = "/";
/// HTTP check method.
pub const DEFAULT_HTTP_METHOD: &str = "GET";
/// HTTP statuses a check accepts, inclusive.
pub const DEFAULT_EXPECT_STATUS: (u16, u16) = (200, 399);
/// UDP check payload.
pub const DEFAULT_UDP_SEND: &str = "";

/// How the XDP path reaches backends.
pub const DEFAULT_FORWARDING: Forwarding = Forwarding::Dsr;
/// XDP flow-table entries.
pub const DEFAULT_FLOW_TABLE: u64 = 1_000_000;
/// Directory for the XDP plane's pinned maps.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/balancer";

/// Record a TCP flow on its first non-SYN packet.
pub const DEFAULT_FLOW_ON_ACK: bool = true;
/// Policy for TCP packets that need a flow and have none.
pub const DEFAULT_STRAY_TCP: StrayTcp = StrayTcp::Drop;
/// Sources the per-source limits track at once.
pub const DEFAULT_SOURCES: u32 = 65_536;

/// Time for a whole HTTP request head to arrive.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest HTTP request head.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 65_536;
/// The most header fields in an HTTP request.
pub const DEFAULT_MAX_HEADERS: u64 = 100;
/// The longest pause between pieces of a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a backend may take to start its answer.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle HTTP client connection is kept.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_mins(1);
/// Concurrent HTTP/2 streams per client connection.
pub const DEFAULT_MAX_STREAMS: u64 = 100;
/// Idle upstream connections kept per backend: above the concurrency a
/// busy listener sends one backend, since a connection beyond the bound is
/// closed after its request and the next one opens anew (measured: 32 under
/// 50 concurrent clients opened a new connection for 11% of requests).
pub const DEFAULT_UPSTREAM_MAX_IDLE: u64 = 128;
/// How long an idle upstream connection is kept: under the 75 s nginx
/// keeps an idle client, so the balancer, not the backend, closes it and
/// never sends a request on a connection the backend is closing.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_mins(1);
/// A redirect's status.
pub const DEFAULT_REDIRECT_STATUS: u16 = 302;
/// Time for a TLS client to finish its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The header that carries a verified client certificate's subject.
pub const DEFAULT_CLIENT_SUBJECT_HEADER: &str = "x-client-subject";

impl Default for Guard {
    fn default() -> Self {
        Self {
            deny: Vec::new(),
            allow: Vec::new(),
            martians: Vec::new(),
            per_source: PerSource::default(),
            flow_on_ack: DEFAULT_FLOW_ON_ACK,
            stray_tcp: DEFAULT_STRAY_TCP,
        }
    }
}

impl Default for PerSource {
    fn default() -> Self {
        Self {
            syn: None,
            packets: None,
            table_size: NonZeroU32::new(DEFAULT_SOURCES).expect("non-zero"),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES as usize,
            max_headers: DEFAULT_MAX_HEADERS as usize,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_body: None,
            max_streams: DEFAULT_MAX_STREAMS as u32,
        }
    }
}

/// `announce.interface` when unset.
pub const DEFAULT_ANNOUNCE_INTERFACE: &str = "vip0";
/// `announce.min_healthy` when unset.
pub const DEFAULT_MIN_HEALTHY: u64 = 1;

/// `discover.dns.min_interval`: the soonest a name is asked again.
pub const DEFAULT_DNS_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// `discover.dns.max_interval`: the latest a name is asked again.
pub const DEFAULT_DNS_MAX_INTERVAL: Duration = Duration::from_mins(5);
/// `discover.dns.timeout`: per server and attempt.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// `discover.max_backends`.
pub const DEFAULT_DISCOVERED_BACKENDS: u64 = 256;
