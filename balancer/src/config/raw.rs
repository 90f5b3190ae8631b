//! Stage one of loading: the file's shape, exactly as written. Every struct
//! denies unknown fields so a typo is an error at load, never a silently
//! ignored key. Values whose syntax we check ourselves (addresses, durations,
//! CIDRs) stay strings here so the validator can quote them back in errors.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    http::{LogFormat, UpstreamVersion},
    model::{
        Algorithm, Forwarding, KernelLog, Mode, Protocol, ProxyEngine, ProxyVersion, StrayTcp,
    },
    tls::ClientAuthMode,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub pools: Vec<RawPool>,
    #[serde(default)]
    pub xdp: Option<RawXdp>,
    #[serde(default)]
    pub guard: Option<RawGuard>,
    #[serde(default)]
    pub announce: Option<RawAnnounce>,
    #[serde(default)]
    pub shutdown_grace: Option<String>,
    #[serde(default)]
    pub state_dir: Option<String>,
    #[serde(default)]
    pub demo_backends: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub public_metrics: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub address: String,
    pub protocol: Protocol,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub max_connections: Option<u64>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
    #[serde(default)]
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub connect_attempts: Option<u64>,
    #[serde(default)]
    pub proxy_engine: Option<ProxyEngine>,
    #[serde(default)]
    pub max_sessions: Option<u64>,
    #[serde(default)]
    pub guard: Option<RawListenerGuard>,
    #[serde(default)]
    pub routes: Option<Vec<RawRoute>>,
    #[serde(default)]
    pub http: Option<RawHttp>,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub proxy_protocol: Option<RawAcceptProxy>,
}

/// A listener's `proxy_protocol:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcceptProxy {
    pub accept_from: Vec<String>,
}

/// A listener's `tls:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    #[serde(default)]
    pub strict_sni: Option<bool>,
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub client_auth: Option<ClientAuthMode>,
    #[serde(default)]
    pub client_subject_header: Option<String>,
    #[serde(default)]
    pub handshake_timeout: Option<String>,
}

/// One `tls.certificates` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    #[serde(default)]
    pub maglev_table_size: Option<u64>,
    #[serde(default)]
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub slow_start: Option<String>,
    #[serde(default)]
    pub drain_timeout: Option<String>,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    #[serde(default)]
    pub http: Option<UpstreamVersion>,
    #[serde(default)]
    pub keepalive: Option<RawKeepalive>,
    #[serde(default)]
    pub proxy_protocol: Option<ProxyVersion>,
    #[serde(default)]
    pub tls: Option<RawPoolTls>,
    #[serde(default)]
    pub discover: Option<RawDiscover>,
}

/// A pool's `discover:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscover {
    #[serde(default)]
    pub dns: Option<RawDns>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub max_backends: Option<u64>,
}

/// `discover.dns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub name: String,
    #[serde(default, rename = "type")]
    pub record: Option<super::discover::RecordKind>,
    #[serde(default)]
    pub port: Option<u64>,
    #[serde(default)]
    pub weight: Option<i64>,
    #[serde(default)]
    pub resolvers: Option<Vec<String>>,
    #[serde(default)]
    pub min_interval: Option<String>,
    #[serde(default)]
    pub max_interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub allow_empty: Option<bool>,
}

/// A discovery file: the backends a pool with `discover.file` follows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendsFile {
    #[serde(default)]
    pub backends: Vec<RawBackend>,
}

/// A pool's `tls:` block: TLS from the HTTP layer to its backends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolTls {
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub verify: Option<bool>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub kind: HealthKind,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub rise: Option<u64>,
    #[serde(default)]
    pub fall: Option<u64>,
    #[serde(default)]
    pub jitter: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub expect_status: Option<String>,
    #[serde(default)]
    pub send: Option<String>,
    #[serde(default)]
    pub expect: Option<String>,
    #[serde(default)]
    pub passive: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXdp {
    pub interface: String,
    #[serde(default)]
    pub forwarding: Option<Forwarding>,
    #[serde(default)]
    pub flow_table_size: Option<u64>,
    #[serde(default)]
    pub pin_dir: Option<String>,
    #[serde(default)]
    pub log: Option<KernelLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnounce {
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub min_healthy: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub martians: Vec<String>,
    #[serde(default)]
    pub per_source: Option<RawPerSource>,
    #[serde(default)]
    pub flow_on_ack: Option<bool>,
    #[serde(default)]
    pub stray_tcp: Option<StrayTcp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerSource {
    #[serde(default)]
    pub syn_rate: Option<u64>,
    #[serde(default)]
    pub syn_burst: Option<u64>,
    #[serde(default)]
    pub packet_rate: Option<u64>,
    #[serde(default)]
    pub packet_burst: Option<u64>,
    #[serde(default)]
    pub table_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerGuard {
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub syn_rate: Option<u64>,
    #[serde(default)]
    pub syn_burst: Option<u64>,
    #[serde(default)]
    pub syn_cookies_above: Option<u64>,
}

/// The `kind` key of a health check; validation turns it into a
/// [`Probe`](super::model::Probe) variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// TCP connect.
    Tcp,
    /// HTTP request, expect 2xx/3xx.
    Http,
    /// UDP send and expect a reply.
    Udp,
}

impl HealthKind {
    /// The name the config file uses.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            HealthKind::Tcp => "tcp",
            HealthKind::Http => "http",
            HealthKind::Udp => "udp",
        }
    }
}

/// An `http` listener's `http:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    #[serde(default)]
    pub header_timeout: Option<String>,
    #[serde(default)]
    pub max_header_bytes: Option<u64>,
    #[serde(default)]
    pub max_headers: Option<u64>,
    #[serde(default)]
    pub body_timeout: Option<String>,
    #[serde(default)]
    pub response_timeout: Option<String>,
    #[serde(default)]
    pub keepalive_timeout: Option<String>,
    #[serde(default)]
    pub max_body: Option<u64>,
    #[serde(default)]
    pub max_streams: Option<u64>,
    #[serde(default)]
    pub request_headers: Option<RawHeaders>,
    #[serde(default)]
    pub response_headers: Option<RawHeaders>,
    #[serde(default)]
    pub access_log: Option<RawAccessLog>,
}

/// Header rewrites: names to remove, names to values to set or add.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// A file, or `stdout`.
    pub path: String,
    #[serde(default)]
    pub format: Option<LogFormat>,
}

/// One route of an `http` listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: Option<RawMatch>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub split: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    pub redirect: Option<RawRedirect>,
    #[serde(default)]
    pub answer: Option<RawAnswer>,
    #[serde(default)]
    pub strip_prefix: Option<String>,
    #[serde(default)]
    pub request_headers: Option<RawHeaders>,
    #[serde(default)]
    pub response_headers: Option<RawHeaders>,
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub compress: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub host: Option<String>,
    /// The TLS ClientHello's server name (`proxy` listeners).
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswer {
    pub status: u16,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// `client_ip`, or `header:<name>`.
    pub key: String,
    pub rate: u64,
    #[serde(default)]
    pub burst: Option<u64>,
}

/// A pool's keep-alive toward its backends (HTTP layer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeepalive {
    #[serde(default)]
    pub max_idle: Option<u64>,
    #[serde(default)]
    pub idle_timeout: Option<String>,
}
