//! What the soak's clients saw, second by second: answers per plane, and
//! each failure with its time, plane and cause, so the verdict can match
//! failures against the backend flaps that explain them.

use std::{sync::Mutex, time::Instant};

/// A data plane the soak loads, as a client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plane {
    /// The XDP VIP (DSR), keep-alive connections.
    XdpKept,
    /// The XDP VIP, a new connection per request.
    XdpNew,
    /// The TCP proxy (splice), a new connection per request.
    Proxy,
    /// The HTTP listener, HTTP/1.1 keep-alive.
    Http1,
    /// The HTTP listener, HTTP/2 without TLS (prior knowledge).
    H2c,
    /// The TLS listener, HTTP/1.1 keep-alive.
    Https1,
    /// The TLS listener, a new connection (full handshake) per request.
    HttpsNew,
    /// The TLS listener, HTTP/2 agreed by ALPN.
    Https2,
    /// The UDP proxy, request and answer datagrams on kept sockets (one
    /// session each).
    Udp,
    /// The UDP proxy, a new socket (a new session) per request.
    UdpNew,
}

impl Plane {
    /// Every plane, in report order.
    pub const ALL: [Self; 10] = [
        Self::XdpKept,
        Self::XdpNew,
        Self::Proxy,
        Self::Http1,
        Self::H2c,
        Self::Https1,
        Self::HttpsNew,
        Self::Https2,
        Self::Udp,
        Self::UdpNew,
    ];

    /// Short name for reports and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XdpKept => "xdp-kept",
            Self::XdpNew => "xdp-new",
            Self::Proxy => "tcp-proxy",
            Self::Http1 => "http1",
            Self::H2c => "h2c",
            Self::Https1 => "https1",
            Self::HttpsNew => "https-new",
            Self::Https2 => "https2",
            Self::Udp => "udp",
            Self::UdpNew => "udp-new",
        }
    }

    /// Datagrams rather than HTTP.
    #[must_use]
    pub fn is_udp(self) -> bool {
        matches!(self, Self::Udp | Self::UdpNew)
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// One request that got no good answer.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Seconds since the soak began.
    pub at: f64,
    /// Where it was sent.
    pub plane: Plane,
    /// A UDP request whose answer never came (what packet loss also
    /// does), as opposed to an error a client saw.
    pub lost: bool,
    /// What went wrong, as the client saw it.
    pub what: String,
}

#[derive(Default)]
struct Inner {
    /// Answers per second since the start, per plane.
    ok: Vec<[u32; Plane::ALL.len()]>,
    /// Failures per second since the start, per plane.
    failed: Vec<[u32; Plane::ALL.len()]>,
    failures: Vec<Failure>,
    /// Keep-alive connections the server closed between requests, so the
    /// client opened another (what every HTTP client does), per plane.
    reconnects: [u64; Plane::ALL.len()],
}

/// Shared by every client task.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    #[must_use]
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Seconds since the start.
    #[must_use]
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner)
    }

    /// A good answer on `plane`.
    pub fn ok(&self, plane: Plane) {
        let second = self.start.elapsed().as_secs() as usize;
        self.with(|i| bump(&mut i.ok, second, plane));
    }

    /// A failed request on `plane`; `lost` for a UDP answer that never came.
    pub fn failed(&self, plane: Plane, lost: bool, what: String) {
        let at = self.now();
        let second = self.start.elapsed().as_secs() as usize;
        self.with(|i| {
            bump(&mut i.failed, second, plane);
            i.failures.push(Failure {
                at,
                plane,
                lost,
                what,
            });
        });
    }

    /// A keep-alive connection closed by the server between requests.
    pub fn reconnect(&self, plane: Plane) {
        self.with(|i| i.reconnects[plane.index()] += 1);
    }

    /// Answers per second on `plane`, one entry per second so far.
    #[must_use]
    pub fn ok_series(&self, plane: Plane) -> Vec<u32> {
        self.with(|i| i.ok.iter().map(|s| s[plane.index()]).collect())
    }

    /// Failures per second (every plane), one entry per second so far.
    #[must_use]
    pub fn failed_series(&self) -> Vec<u32> {
        self.with(|i| i.failed.iter().map(|s| s.iter().sum()).collect())
    }

    /// Every failure so far.
    #[must_use]
    pub fn failures(&self) -> Vec<Failure> {
        self.with(|i| i.failures.clone())
    }

    /// Reconnects so far on `plane`.
    #[must_use]
    pub fn reconnects(&self, plane: Plane) -> u64 {
        self.with(|i| i.reconnects[plane.index()])
    }
}

fn bump(series: &mut Vec<[u32; Plane::ALL.len()]>, second: usize, plane: Plane) {
    if series.len() <= second {
        series.resize(second + 1, [0; Plane::ALL.len()]);
    }
    series[second][plane.index()] += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_second_and_plane() {
        let r = Recorder::new(Instant::now());
        r.ok(Plane::Udp);
        r.ok(Plane::Udp);
        r.failed(Plane::Proxy, false, "reset".into());
        assert_eq!(r.ok_series(Plane::Udp), vec![2]);
        assert_eq!(r.ok_series(Plane::Proxy), vec![0]);
        assert_eq!(r.failed_series(), vec![1]);
        assert_eq!(r.failures()[0].what, "reset");
        r.reconnect(Plane::H2c);
        assert_eq!(r.reconnects(Plane::H2c), 1);
    }
}
