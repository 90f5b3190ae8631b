//! The soak: every plane loaded at once for minutes in the namespace
//! network of [`site`], while [`chaos`] stops and starts backends, reloads,
//! changes guard lists and upgrades the daemon, and packets toward the
//! backends are dropped at random. The daemon's memory, descriptors and
//! log lines are sampled each second; [`verdict`] decides whether the run
//! was clean. `cargo xtask test` runs 3 minutes of it (`tests/soak.rs`);
//! `cargo xtask soak --minutes N` runs longer and writes `docs/soak.md`.

pub mod chaos;
pub mod load;
pub mod record;
pub mod report;
pub mod site;
pub mod verdict;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};

use crate::{bpffs::BpfFs, l2::L2, sys};

use self::{
    chaos::{Action, Chaos},
    load::{Target, Tls},
    record::{Failure, Plane, Recorder},
    site::{HTTP_PORT, PROXY_PORT, TLS_PORT, UDP_PORT, on_lb},
    verdict::{Change, Flap, Sample},
};

/// How a soak runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Length of the load.
    pub duration: Duration,
    /// Packets dropped on each backend link, per thousand, each way.
    pub loss_permille: u32,
    /// Seeds the schedule of flaps.
    pub seed: u64,
    /// Time between upgrades.
    pub upgrade_every: Duration,
}

impl Settings {
    /// `BALANCER_SOAK_MINUTES` (default 3), `BALANCER_SOAK_LOSS_PERMILLE`
    /// (default 20) and `BALANCER_SOAK_SEED` (default: the clock); an
    /// upgrade halfway through a short run, every 5 minutes in a long one.
    ///
    /// # Panics
    /// When a variable is set but is not a number.
    #[must_use]
    pub fn from_env() -> Self {
        let minutes: f64 = env("BALANCER_SOAK_MINUTES").unwrap_or(3.0);
        let duration = Duration::from_secs_f64(minutes.clamp(0.5, 600.0) * 60.0);
        Self {
            duration,
            loss_permille: env("BALANCER_SOAK_LOSS_PERMILLE").unwrap_or(20),
            seed: env("BALANCER_SOAK_SEED").unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            }),
            upgrade_every: (duration / 2).min(Duration::from_mins(5)),
        }
    }
}

/// The variable `name` as a `T`, when set.
fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number of the right kind"))
    })
}

/// Everything a run recorded.
pub struct Run {
    /// How it ran.
    pub settings: Settings,
    /// The serving daemon, each second.
    pub samples: Vec<Sample>,
    /// Answers per second, per plane.
    pub rates: Vec<(Plane, Vec<u32>)>,
    /// Failures per second, every plane.
    pub failed_per_second: Vec<u32>,
    /// Every failure.
    pub failures: Vec<Failure>,
    /// Reconnects per plane (keep-alive connections the server closed).
    pub reconnects: Vec<(Plane, u64)>,
    /// What chaos did.
    pub actions: Vec<Action>,
    /// Each backend stop.
    pub flaps: Vec<Flap>,
    /// Backend state changes the daemons logged.
    pub changes: Vec<Change>,
    /// Seconds each old daemon took to exit after its handover.
    pub exits: Vec<Option<f64>>,
    /// Admin calls refused.
    pub refused: Vec<String>,
    /// Log lines with a panic.
    pub panics: Vec<String>,
    /// Packets the loss rules dropped.
    pub dropped: u64,
    /// Requests a second each plane was loaded with.
    pub nominal: Vec<(Plane, u32)>,
}

/// The clients: every plane, at rates a 2-core machine carries beside the
/// daemon (about 320 requests a second in all).
fn targets(ca: &std::path::Path) -> Vec<Target> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("the test CA") {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let tls = |alpn: &[u8]| {
        let mut c = ClientConfig::builder()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![alpn.to_vec()];
        Some(Tls {
            config: Arc::new(c),
            name: ServerName::try_from(site::TLS_NAME).expect("name"),
        })
    };
    let vip = L2::vip(80);
    let t = |plane, addr, tls, http2, reuse, connections, per_sec| Target {
        plane,
        addr,
        tls,
        http2,
        reuse,
        connections,
        per_sec,
    };
    vec![
        t(Plane::XdpKept, vip, None, false, true, 4, 10),
        t(Plane::XdpNew, vip, None, false, false, 1, 20),
        t(Plane::Proxy, on_lb(PROXY_PORT), None, false, false, 1, 30),
        t(Plane::Http1, on_lb(HTTP_PORT), None, false, true, 4, 10),
        t(Plane::H2c, on_lb(HTTP_PORT), None, true, true, 2, 25),
        t(
            Plane::Https1,
            on_lb(TLS_PORT),
            tls(b"http/1.1"),
            false,
            true,
            2,
            10,
        ),
        t(
            Plane::HttpsNew,
            on_lb(TLS_PORT),
            tls(b"http/1.1"),
            false,
            false,
            1,
            5,
        ),
        t(
            Plane::Https2,
            on_lb(TLS_PORT),
            tls(b"h2"),
            true,
            true,
            2,
            25,
        ),
        t(Plane::Udp, on_lb(UDP_PORT), None, false, true, 4, 10),
        t(Plane::UdpNew, on_lb(UDP_PORT), None, false, false, 1, 20),
    ]
}

/// Sets its flag when dropped, also by a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn sample(chaos: &Chaos<'_>, rec: &Recorder) -> Sample {
    let pid = chaos.daemon.pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let log_lines = chaos
        .logs
        .iter()
        .map(|p| std::fs::read_to_string(p).map_or(0, |t| t.lines().count() as u64))
        .sum();
    Sample {
        at: rec.now(),
        generation: chaos.generation,
        rss_kib: sys::rss_kib(pid).unwrap_or(0),
        fds,
        log_lines,
    }
}

/// Runs a soak as `settings` says and returns what it recorded.
///
/// # Panics
/// When the network or a process cannot be set up.
#[must_use]
pub fn run(settings: &Settings) -> Run {
    let t = L2::new(site::BACKENDS);
    let fs = BpfFs::new();
    let (ca, pair) = site::certificates(t.dir.path());
    site::packet_loss(&t, settings.loss_permille);
    let targets = targets(&ca.cert);
    let rec = Arc::new(Recorder::new(Instant::now()));
    let start_of_day = sys::now_of_day();
    eprintln!(
        "soak: {:.1} minutes, loss {}‰ each way, seed {}, upgrade every {:?}",
        settings.duration.as_secs_f64() / 60.0,
        settings.loss_permille,
        settings.seed,
        settings.upgrade_every
    );
    let mut chaos = Chaos::start(
        &t,
        &rec,
        pair,
        fs.path().join("lb"),
        settings.seed,
        settings.upgrade_every,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut samples = Vec::new();
    let end = Instant::now() + settings.duration;
    // The clients stop by themselves a minute after the planned end.
    let deadline = end + Duration::from_mins(1);
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            t.client
                .enter(|| load::run(&targets, &rec, &stop, deadline));
        });
        let _stop = StopOnDrop(&stop);
        let mut next_sample = Instant::now();
        while Instant::now() < end {
            // No new flap or upgrade in the last 20 s: the run ends calm.
            chaos.tick(end.saturating_duration_since(Instant::now()) < Duration::from_secs(20));
            if Instant::now() >= next_sample {
                samples.push(sample(&chaos, &rec));
                next_sample += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        assert!(load.join().is_ok(), "the clients panicked");
    });
    let exits = chaos.finish();
    let mut changes = Vec::new();
    let mut panics = Vec::new();
    for log in &chaos.logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        changes.extend(verdict::changes(&text, start_of_day));
        panics.extend(
            text.lines()
                .filter(|l| l.contains("panicked"))
                .map(str::to_owned),
        );
    }
    changes.sort_by(|a, b| a.at.total_cmp(&b.at));
    if let Some(out) = out_dir() {
        keep_logs(&t, &out.join("logs"));
    }
    let dropped = if settings.loss_permille == 0 {
        0
    } else {
        site::dropped(&t)
    };
    Run {
        settings: settings.clone(),
        samples,
        rates: Plane::ALL.iter().map(|p| (*p, rec.ok_series(*p))).collect(),
        failed_per_second: rec.failed_series(),
        failures: rec.failures(),
        reconnects: Plane::ALL
            .iter()
            .map(|p| (*p, rec.reconnects(*p)))
            .collect(),
        actions: chaos.actions.clone(),
        flaps: chaos.flaps.clone(),
        changes,
        exits,
        refused: chaos.refused.clone(),
        panics,
        dropped,
        nominal: Plane::ALL
            .iter()
            .map(|p| {
                let rate = targets
                    .iter()
                    .filter(|t| t.plane == *p)
                    .map(|t| t.per_sec * t.connections as u32)
                    .sum();
                (*p, rate)
            })
            .collect(),
    }
}

/// Where a run's JSON goes: `BALANCER_SOAK_OUT`, else nowhere.
#[must_use]
pub fn out_dir() -> Option<PathBuf> {
    std::env::var_os("BALANCER_SOAK_OUT").map(PathBuf::from)
}

/// Copies every log of the run (daemons, backends, clients) to `to`.
fn keep_logs(t: &L2, to: &std::path::Path) {
    let _ = std::fs::create_dir_all(to);
    if let Ok(dir) = std::fs::read_dir(t.dir.path()) {
        for e in dir.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(&path, to.join(e.file_name()));
            }
        }
    }
}
