//! Memory per idle proxied connection. The client opens a fixed number of
//! TCP connections through the proxy and holds them without sending a byte;
//! once the proxy has connected them all upstream, the summed resident
//! memory of every process in the balancer namespace (master and workers
//! alike) is compared with the sum before. Kernel socket memory is not in
//! RSS and so not in the figure: it is the same for every proxy.

use std::{
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use balancer_tests::{Netns, Topology, sys::rss_kib};

use super::float;

/// Idle connections held open.
pub const CONNECTIONS: u32 = 9_000;
/// Time allowed to open them all.
const OPEN_WITHIN: Duration = Duration::from_secs(40);
/// Time allowed for the proxy to connect them all upstream.
const UPSTREAM_WITHIN: Duration = Duration::from_secs(20);
/// Pause before each reading, for allocations triggered by the last
/// events to land.
const SETTLE: Duration = Duration::from_secs(2);

/// What the idle-connection test saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdleRss {
    /// Client connections opened.
    pub opened: u32,
    /// Proxy -> backend connections established when measured.
    pub upstream: u32,
    /// Processes summed.
    pub processes: u32,
    /// Summed RSS before opening, KiB.
    pub before_kib: u64,
    /// Summed RSS with every connection open, KiB.
    pub after_kib: u64,
}

impl IdleRss {
    /// Added resident memory per opened connection, KiB.
    pub fn per_conn_kib(&self) -> f64 {
        float(self.after_kib.saturating_sub(self.before_kib)) / f64::from(self.opened.max(1))
    }
}

/// Opens [`CONNECTIONS`] idle connections to `to` from the client namespace
/// and measures the proxy's RSS growth; closes them again before returning.
pub fn measure(topo: &Topology, to: SocketAddr) -> Result<IdleRss> {
    measure_with(topo, to, CONNECTIONS, || Ok(())).map(|(idle, ())| idle)
}

/// Opens `count` idle connections to `to` from the client namespace,
/// measures the proxy's RSS growth, runs `during` while they are held (a
/// load to measure beside them), then closes them again.
pub fn measure_with<T>(
    topo: &Topology,
    to: SocketAddr,
    count: u32,
    during: impl FnOnce() -> Result<T>,
) -> Result<(IdleRss, T)> {
    std::thread::sleep(SETTLE);
    let (processes, before_kib) = summed_rss(&topo.lb);
    let streams = topo.client.enter(|| open(to, count));
    let opened = u32::try_from(streams.len()).unwrap_or(u32::MAX);
    if opened < count {
        bail!("only {opened} of {count} idle connections to {to} opened within {OPEN_WITHIN:?}");
    }
    let upstream = wait_upstream(&topo.lb, to.port(), opened);
    std::thread::sleep(SETTLE);
    let (_, after_kib) = summed_rss(&topo.lb);
    let result = during();
    drop(streams);
    // Let the proxy tear everything down before the next measurement.
    let deadline = Instant::now() + Duration::from_secs(15);
    while established_upstream(&topo.lb, to.port()) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if upstream < opened {
        bail!(
            "the proxy connected only {upstream} of {opened} idle connections upstream within {UPSTREAM_WITHIN:?}"
        );
    }
    let idle = IdleRss {
        opened,
        upstream,
        processes,
        before_kib,
        after_kib,
    };
    Ok((idle, result?))
}

/// [`measure`] for an HTTP proxy: each connection makes one keep-alive
/// request, reads the answer, then idles (an HTTP proxy holds no backend
/// connection for an idle client, so none is waited for).
pub fn measure_http(topo: &Topology, to: SocketAddr) -> Result<IdleRss> {
    use std::io::{Read as _, Write as _};
    std::thread::sleep(SETTLE);
    let (processes, before_kib) = summed_rss(&topo.lb);
    let (streams, answered) = topo.client.enter(|| {
        let mut streams = open(to, CONNECTIONS);
        let mut answered = 0u32;
        for s in &mut streams {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let ok = s
                .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                .is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"));
            answered += u32::from(ok);
        }
        (streams, answered)
    });
    let opened = u32::try_from(streams.len()).unwrap_or(u32::MAX);
    if opened < CONNECTIONS || answered < opened {
        bail!(
            "{answered} of {opened} (of {CONNECTIONS}) keep-alive connections to {to} were answered"
        );
    }
    std::thread::sleep(SETTLE);
    let (_, after_kib) = summed_rss(&topo.lb);
    drop(streams);
    std::thread::sleep(SETTLE);
    Ok(IdleRss {
        opened,
        upstream: 0,
        processes,
        before_kib,
        after_kib,
    })
}

/// Runs on a thread inside the client namespace. Bounded by count, by
/// time and by consecutive failures.
fn open(to: SocketAddr, count: u32) -> Vec<TcpStream> {
    let deadline = Instant::now() + OPEN_WITHIN;
    let mut streams = Vec::with_capacity(count as usize);
    let mut failures = 0;
    while streams.len() < count as usize && failures < 20 && Instant::now() < deadline {
        match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
            Ok(s) => {
                streams.push(s);
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                eprintln!("bench: idle connection {} to {to}: {e}", streams.len() + 1);
            }
        }
    }
    streams
}

fn wait_upstream(lb: &Netns, port: u16, want: u32) -> u32 {
    let deadline = Instant::now() + UPSTREAM_WITHIN;
    loop {
        let n = established_upstream(lb, port);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Established connections from the balancer namespace to backends' `port`.
fn established_upstream(lb: &Netns, port: u16) -> u32 {
    let filter = format!("dport = :{port}");
    let out = lb.run("ss", &["-Htn", "state", "established", &filter]);
    u32::try_from(out.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(u32::MAX)
}

/// (processes, summed `VmRSS` in KiB) over every process in `ns`.
fn summed_rss(ns: &Netns) -> (u32, u64) {
    let rss: Vec<u64> = ns.pids().into_iter().filter_map(rss_kib).collect();
    (
        u32::try_from(rss.len()).unwrap_or(u32::MAX),
        rss.iter().sum(),
    )
}
