//! Turns the raw file into a [`Config`], checking every value and every
//! cross-reference. It collects all problems instead of stopping at the
//! first, so one `balancer check` run lists everything to fix.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    num::NonZeroU32,
    time::Duration,
};

use super::{
    model::{
        Algorithm, Backend, Config, Forwarding, Guard, HealthCheck, HealthKind, Listener, Mode,
        Pool, Protocol, Xdp,
    },
    raw::{RawBackend, RawConfig, RawHealth, RawListener, RawPool, RawXdp},
    values,
};

/// Defaults and hard limits. Limits exist so that no setting can ask for an
/// unbounded amount of memory or file descriptors.
pub mod limits {
    /// Default admin API address.
    pub const ADMIN: &str = "127.0.0.1:9900";
    /// Default backend weight.
    pub const WEIGHT: i64 = 100;
    /// Highest backend weight.
    pub const MAX_WEIGHT: i64 = 10_000;
    /// Most listeners in one file.
    pub const MAX_LISTENERS: usize = 1024;
    /// Most backends in one pool.
    pub const MAX_BACKENDS: usize = 10_000;
    /// Default Maglev table size (prime).
    pub const MAGLEV_TABLE: u64 = 65_537;
    /// Largest Maglev table size.
    pub const MAX_MAGLEV_TABLE: u64 = 4_194_301;
    /// Default connections per TCP listener.
    pub const MAX_CONNECTIONS: u64 = 10_000;
    /// Highest connections per TCP listener.
    pub const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
    /// Default sessions per UDP listener.
    pub const MAX_SESSIONS: u64 = 10_000;
    /// Highest sessions per UDP listener.
    pub const MAX_MAX_SESSIONS: u64 = 1_000_000;
    /// Default backend connect attempts.
    pub const CONNECT_ATTEMPTS: u64 = 3;
    /// Highest backend connect attempts.
    pub const MAX_CONNECT_ATTEMPTS: u64 = 16;
    /// Default flow-table size.
    pub const FLOW_TABLE: u64 = 1_000_000;
    /// Largest flow-table size.
    pub const MAX_FLOW_TABLE: u64 = 100_000_000;
    /// Highest health rise/fall count.
    pub const MAX_RISE_FALL: u64 = 100;
}

/// Accumulates `(field path, message)` pairs.
#[derive(Default)]
pub struct Problems(pub Vec<(String, String)>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    pub(super) fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.add(path, m)).ok()
    }

    fn duration(&mut self, path: &str, text: Option<&String>, default: Duration) -> Duration {
        text.map_or(Some(default), |t| self.check(path, values::duration(t)))
            .unwrap_or(default)
    }

    pub(super) fn bounded(
        &mut self,
        path: &str,
        value: Option<u64>,
        default: u64,
        max: u64,
    ) -> NonZeroU32 {
        let v = value.unwrap_or(default);
        if v == 0 || v > max {
            self.add(path, format!("`{v}` is out of range (expected 1..={max})"));
        }
        NonZeroU32::new(u32::try_from(v.clamp(1, max)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN)
    }
}

/// Validates `raw`; on failure returns every problem found.
pub fn validate(raw: &RawConfig) -> Result<Config, Problems> {
    let mut p = Problems::default();
    if raw.version != 1 {
        p.add(
            "version",
            format!("`{}` is not a supported version (expected 1)", raw.version),
        );
    }
    let admin_token_file = raw
        .admin
        .as_ref()
        .and_then(|a| a.token_file.as_deref())
        .map(|f| {
            if !f.starts_with('/') {
                p.add(
                    "admin.token_file",
                    format!("`{f}` must be an absolute path"),
                );
            }
            std::path::PathBuf::from(f)
        });
    let admin = raw
        .admin
        .as_ref()
        .map_or(Some(limits::ADMIN.parse().ok()).flatten(), |a| {
            p.check("admin.listen", values::socket_addr(&a.listen))
        });
    let pools = pools(&raw.pools, &mut p);
    let pool_index: HashMap<&str, usize> = raw
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| (pool.name.as_str(), i))
        .collect();
    let xdp = raw.xdp.as_ref().map(|x| xdp(x, &mut p));
    let guard = raw
        .guard
        .as_ref()
        .map(|g| super::guard::guard(g, &mut p))
        .unwrap_or_default();
    let listeners = listeners(
        &raw.listeners,
        &pool_index,
        raw.xdp.is_some(),
        &guard,
        &mut p,
    );
    xdp_listeners(&listeners, &pools, &mut p);
    let state_dir = state_dir(raw.state_dir.as_deref(), &mut p);
    let shutdown_grace = p.duration(
        "shutdown_grace",
        raw.shutdown_grace.as_ref(),
        Duration::from_secs(10),
    );
    let demo_backends: Vec<SocketAddr> = raw
        .demo_backends
        .iter()
        .enumerate()
        .filter_map(|(i, a)| p.check(&format!("demo_backends[{i}]"), values::socket_addr(a)))
        .collect();
    if raw.listeners.is_empty() {
        p.add("listeners", "no listeners defined (expected at least one)");
    }
    if !p.0.is_empty() {
        return Err(p);
    }
    Ok(Config {
        admin: admin.expect("checked above"),
        admin_token_file,
        listeners,
        pools,
        xdp,
        guard,
        shutdown_grace,
        state_dir,
        demo_backends,
    })
}

/// Default directory for the daemon's status snapshot.
pub const STATE_DIR: &str = "/run/balancer";

fn state_dir(raw: Option<&str>, p: &mut Problems) -> std::path::PathBuf {
    let dir = raw.unwrap_or(STATE_DIR);
    if !dir.starts_with('/') {
        p.add("state_dir", format!("`{dir}` must be an absolute path"));
    }
    std::path::PathBuf::from(dir)
}

fn listeners(
    raw: &[RawListener],
    pools: &HashMap<&str, usize>,
    have_xdp: bool,
    global_guard: &Guard,
    p: &mut Problems,
) -> Vec<Listener> {
    if raw.len() > limits::MAX_LISTENERS {
        p.add(
            "listeners",
            format!(
                "{} listeners exceed the limit of {}",
                raw.len(),
                limits::MAX_LISTENERS
            ),
        );
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let at = |f: &str| format!("listeners[{i}].{f}");
        if l.name.trim().is_empty() {
            p.add(at("name"), "must not be empty");
        } else if !names.insert(l.name.as_str()) {
            p.add(
                at("name"),
                format!(
                    "`{}` is used by another listener (names must be unique)",
                    l.name
                ),
            );
        }
        let address = p.check(&at("address"), values::socket_addr(&l.address));
        if let Some(a) = address
            && !addresses.insert((a, l.protocol))
        {
            p.add(
                at("address"),
                format!("`{a}` ({}) is used by another listener", l.protocol),
            );
        }
        let mode = l.mode.unwrap_or(Mode::Auto);
        if l.protocol == Protocol::Udp && mode == Mode::Http {
            p.add(
                at("mode"),
                "`http` needs a tcp listener (this one is udp; use `proxy` or `auto`)",
            );
        }
        if mode == Mode::Xdp && !have_xdp {
            p.add(
                at("mode"),
                "`xdp` needs the top-level `xdp` section with an `interface`",
            );
        }
        let pool = pools.get(l.pool.as_str()).copied();
        if pool.is_none() {
            p.add(at("pool"), format!("`{}` is not a defined pool", l.pool));
        }
        let idle_default = match l.protocol {
            Protocol::Tcp => Duration::from_mins(5),
            Protocol::Udp => Duration::from_secs(30),
        };
        out.push(Listener {
            name: l.name.clone(),
            address: address.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            protocol: l.protocol,
            mode,
            pool: pool.unwrap_or(0),
            max_connections: p.bounded(
                &at("max_connections"),
                l.max_connections,
                limits::MAX_CONNECTIONS,
                limits::MAX_MAX_CONNECTIONS,
            ),
            connect_timeout: p.duration(
                &at("connect_timeout"),
                l.connect_timeout.as_ref(),
                Duration::from_secs(2),
            ),
            idle_timeout: p.duration(&at("idle_timeout"), l.idle_timeout.as_ref(), idle_default),
            connect_attempts: p.bounded(
                &at("connect_attempts"),
                l.connect_attempts,
                limits::CONNECT_ATTEMPTS,
                limits::MAX_CONNECT_ATTEMPTS,
            ),
            max_sessions: p.bounded(
                &at("max_sessions"),
                l.max_sessions,
                limits::MAX_SESSIONS,
                limits::MAX_MAX_SESSIONS,
            ),
            guard: l
                .guard
                .as_ref()
                .map(|g| super::guard::listener(g, i, (mode, l.protocol), global_guard, p))
                .unwrap_or_default(),
        });
    }
    out
}

/// What the kernel plane can do: a Maglev ring per VIP (so `maglev` pools
/// only) and no port translation (a backend serves the VIP's port).
/// `auto` listeners that do not qualify are served by the proxy instead.
fn xdp_listeners(listeners: &[Listener], pools: &[Pool], p: &mut Problems) {
    for (i, l) in listeners.iter().enumerate() {
        if l.mode != Mode::Xdp {
            continue;
        }
        let Some(pool) = pools.get(l.pool) else {
            continue;
        };
        if pool.algorithm != Algorithm::Maglev {
            p.add(
                format!("listeners[{i}].mode"),
                format!("`xdp` balances with the pool's Maglev ring; pool `{}` uses `{}` (use `maglev`, or mode `auto`/`proxy`)", pool.name, pool.algorithm),
            );
        }
        if let Some(b) = pool
            .backends
            .iter()
            .find(|b| b.address.port() != l.address.port())
        {
            p.add(
                format!("listeners[{i}].mode"),
                format!(
                    "`xdp` forwards packets unchanged, so backends must serve the listener's port {}; `{}` in pool `{}` does not",
                    l.address.port(),
                    b.address,
                    pool.name
                ),
            );
        }
    }
}

fn pools(raw: &[RawPool], p: &mut Problems) -> Vec<Pool> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, pool) in raw.iter().enumerate() {
        let at = |f: &str| format!("pools[{i}].{f}");
        if pool.name.trim().is_empty() {
            p.add(at("name"), "must not be empty");
        } else if !names.insert(pool.name.as_str()) {
            p.add(
                at("name"),
                format!(
                    "`{}` is used by another pool (names must be unique)",
                    pool.name
                ),
            );
        }
        let algorithm = pool.algorithm.unwrap_or(Algorithm::WeightedRoundRobin);
        let table = pool.maglev_table_size.unwrap_or(limits::MAGLEV_TABLE);
        if !values::is_prime(table) || table > limits::MAX_MAGLEV_TABLE {
            p.add(
                at("maglev_table_size"),
                format!(
                    "`{table}` must be a prime no larger than {}",
                    limits::MAX_MAGLEV_TABLE
                ),
            );
        } else if table < pool.backends.len() as u64 {
            p.add(
                at("maglev_table_size"),
                format!(
                    "`{table}` is smaller than the pool's {} backends",
                    pool.backends.len()
                ),
            );
        }
        let health = pool.health.as_ref().map(|h| health(h, &at("health"), p));
        out.push(Pool {
            name: pool.name.clone(),
            algorithm,
            maglev_table_size: u32::try_from(table).unwrap_or(u32::MAX),
            health,
            slow_start: pool
                .slow_start
                .as_ref()
                .and_then(|s| p.check(&at("slow_start"), values::duration(s))),
            drain_timeout: pool
                .drain_timeout
                .as_ref()
                .and_then(|s| p.check(&at("drain_timeout"), values::duration(s))),
            backends: backends(&pool.backends, &at("backends"), p),
        });
    }
    out
}

fn backends(raw: &[RawBackend], at: &str, p: &mut Problems) -> Vec<Backend> {
    if raw.is_empty() {
        p.add(at, "pool has no backends (expected at least one)");
    }
    if raw.len() > limits::MAX_BACKENDS {
        p.add(
            at,
            format!(
                "{} backends exceed the limit of {}",
                raw.len(),
                limits::MAX_BACKENDS
            ),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let address = p.check(
            &format!("{at}[{i}].address"),
            values::socket_addr(&b.address),
        );
        if let Some(a) = address
            && !seen.insert(a)
        {
            p.add(
                format!("{at}[{i}].address"),
                format!("`{a}` appears twice in this pool"),
            );
        }
        let weight = b.weight.unwrap_or(limits::WEIGHT);
        if !(0..=limits::MAX_WEIGHT).contains(&weight) {
            p.add(
                format!("{at}[{i}].weight"),
                format!(
                    "`{weight}` is out of range (expected 0..={}; 0 drains the backend)",
                    limits::MAX_WEIGHT
                ),
            );
        }
        if let Some(address) = address {
            out.push(Backend {
                address,
                weight: u32::try_from(weight.clamp(0, limits::MAX_WEIGHT)).unwrap_or(0),
            });
        }
    }
    out
}

fn health(h: &RawHealth, at: &str, p: &mut Problems) -> HealthCheck {
    let interval = p.duration(
        &format!("{at}.interval"),
        h.interval.as_ref(),
        Duration::from_secs(2),
    );
    let timeout = p.duration(
        &format!("{at}.timeout"),
        h.timeout.as_ref(),
        Duration::from_secs(1),
    );
    if timeout > interval {
        p.add(
            format!("{at}.timeout"),
            format!(
                "`{timeout:?}` is longer than the interval `{interval:?}` (checks would overlap)"
            ),
        );
    }
    let path = h.path.clone().unwrap_or_else(|| "/".to_owned());
    if h.kind == HealthKind::Http && !path.starts_with('/') {
        p.add(
            format!("{at}.path"),
            format!("`{path}` must start with `/`"),
        );
    }
    let only = |p: &mut Problems, key: &str, set: bool, kind: HealthKind| {
        if set && h.kind != kind {
            p.add(
                format!("{at}.{key}"),
                format!("only `{}` checks take `{key}`", kind.name()),
            );
        }
    };
    only(p, "path", h.path.is_some(), HealthKind::Http);
    only(p, "method", h.method.is_some(), HealthKind::Http);
    only(p, "host", h.host.is_some(), HealthKind::Http);
    only(
        p,
        "expect_status",
        h.expect_status.is_some(),
        HealthKind::Http,
    );
    only(p, "send", h.send.is_some(), HealthKind::Udp);
    only(p, "expect", h.expect.is_some(), HealthKind::Udp);
    let jitter = p.duration(&format!("{at}.jitter"), h.jitter.as_ref(), interval / 10);
    if jitter >= interval && !interval.is_zero() {
        p.add(
            format!("{at}.jitter"),
            format!("`{jitter:?}` must be shorter than the interval `{interval:?}`"),
        );
    }
    let method = h.method.clone().unwrap_or_else(|| "GET".to_owned());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        p.add(
            format!("{at}.method"),
            format!("`{method}` is not an HTTP method (capital letters, like `GET` or `HEAD`)"),
        );
    }
    if let Some(host) = h.host.as_ref().filter(|host| {
        host.is_empty()
            || host
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    }) {
        p.add(
            format!("{at}.host"),
            format!("`{host}` is not a valid Host header"),
        );
    }
    let expect_status = h.expect_status.as_deref().map_or(Some((200, 399)), |s| {
        p.check(&format!("{at}.expect_status"), values::status_range(s))
    });
    HealthCheck {
        kind: h.kind,
        path,
        interval,
        timeout,
        rise: p.bounded(&format!("{at}.rise"), h.rise, 2, limits::MAX_RISE_FALL),
        fall: p.bounded(&format!("{at}.fall"), h.fall, 3, limits::MAX_RISE_FALL),
        jitter,
        method,
        host: h.host.clone(),
        expect_status: expect_status.unwrap_or((200, 399)),
        send: h.send.clone().unwrap_or_default(),
        expect: h.expect.clone(),
        passive: h.passive.unwrap_or(true),
    }
}

fn xdp(x: &RawXdp, p: &mut Problems) -> Xdp {
    let name_ok = !x.interface.is_empty()
        && x.interface.len() < 16
        && !x.interface.contains(['/', ' ', '\0']);
    if !name_ok {
        p.add(
            "xdp.interface",
            format!("`{}` is not a valid interface name", x.interface),
        );
    }
    Xdp {
        interface: x.interface.clone(),
        forwarding: x.forwarding.unwrap_or(Forwarding::Dsr),
        flow_table_size: p.bounded(
            "xdp.flow_table_size",
            x.flow_table_size,
            limits::FLOW_TABLE,
            limits::MAX_FLOW_TABLE,
        ),
        pin_dir: pin_dir(x.pin_dir.as_deref(), p),
    }
}

/// Default directory for the XDP plane's pinned maps.
pub const PIN_DIR: &str = "/sys/fs/bpf/balancer";

fn pin_dir(raw: Option<&str>, p: &mut Problems) -> std::path::PathBuf {
    let dir = raw.unwrap_or(PIN_DIR);
    if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() {
        p.add(
            "xdp.pin_dir",
            format!(
                "`{dir}` must be an absolute path below a BPF filesystem mount, such as `{PIN_DIR}`"
            ),
        );
    }
    std::path::PathBuf::from(dir)
}
