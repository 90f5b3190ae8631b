//! Prometheus metrics for `GET /metrics`, encoded by `prometheus-client`.
//! Nothing is counted twice: a collector reads the same atomics the data
//! planes bump and `/status` shows, at scrape time.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `balancer_listener_info` | gauge (1) | listener, mode, plane |
//! | `balancer_listener_accepted_total` | counter | listener |
//! | `balancer_listener_rejected_limit_total` | counter | listener |
//! | `balancer_listener_no_backend_total` | counter | listener |
//! | `balancer_listener_sessions_evicted_total` | counter | listener |
//! | `balancer_listener_sessions_expired_total` | counter | listener |
//! | `balancer_listener_sessions_replaced_total` | counter | listener |
//! | `balancer_listener_accept_errors_total` | counter | listener |
//! | `balancer_listener_proxy_headers_total`, `_proxy_refused_total` | counter | listener |
//! | `balancer_listener_tls_hellos_total`, `_tls_hellos_without_sni_total`, `_tls_hello_refused_total`, `_tls_hello_timeouts_total` | counter | listener |
//! | `balancer_listener_sockmap_relayed_total`, `_sockmap_spliced_total` | counter | listener |
//! | `balancer_backend_active` | gauge | pool, backend |
//! | `balancer_backend_connections_total` | counter | pool, backend |
//! | `balancer_backend_bytes_total` | counter | pool, backend, direction (`in`, `out`) |
//! | `balancer_backend_connect_failures_total` | counter | pool, backend |
//! | `balancer_backend_tls_failures_total` | counter | pool, backend |
//! | `balancer_backend_weight` | gauge | pool, backend |
//! | `balancer_backend_state` | gauge (1 for the current state) | pool, backend, state |
//! | `balancer_backend_state_changes_total` | counter | pool, backend |
//! | `balancer_health_checks_total` | counter | pool, backend |
//! | `balancer_health_checks_failed_total` | counter | pool, backend |
//! | `balancer_health_check_duration_seconds` | histogram | pool, backend |
//! | `balancer_reloads_total` | counter | result (`ok`, `failed`) |
//! | `balancer_vip_announced` | gauge (1 while announced) | vip |
//! | `balancer_vip_announce_reason` | gauge (1 for the current reason) | vip, reason (`healthy`, `hold_down`, `unhealthy`, `withdrawn`, `failed`) |
//! | `balancer_xdp_packets_total` | counter | counter (verdict, parse outcome or drop reason) |
//! | `balancer_guard_drops_total` | counter | listener, reason |
//! | `balancer_guard_limited_source_drops` | gauge | source (top 10 limited in the last 10 s) |
//! | `balancer_xdp_log_level` | gauge (1 for the current level) | level |
//! | `balancer_xdp_log_lines_total` | counter | level |
//! | `balancer_xdp_log_suppressed_total` | counter | (reports over the log's rate limit) |
//! | `balancer_http_requests_total` | counter | listener, route, code |
//! | `balancer_http_request_duration_seconds` | histogram | listener, route |
//! | `balancer_tls_handshakes_total` | counter | listener, kind (`full`, `resumed`) |
//! | `balancer_tls_handshake_failures_total` | counter | listener, reason |
//! | `balancer_tls_handshakes_by_sni_total` | counter | listener, sni |
//! | `balancer_tls_certificate_expiry_seconds` | gauge | listener, file (Unix time of `notAfter`) |
//! | `balancer_http_upstream_connections_total` | counter | kind (`new`, `reused`) |
//! | `balancer_http_access_log_dropped_total` | counter | (lines the full queue refused) |
//! | `balancer_discovery_backends` | gauge | source (`dns`, `file`), target |
//! | `balancer_discovery_changes_total`, `_failures_total` | counter | source, target |
//! | `balancer_discovery_failing` | gauge (failed rounds in a row) | source, target |
//! | `balancer_discovery_last_change_timestamp_seconds` | gauge | source, target |
//! | `balancer_discovery_left_out` | gauge | pool, reason (`max_backends`, `port`) |

mod discovery;
mod kernel;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use balancer_common::Counter;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet, text::encode},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{
    publish::{Sources, View},
    runtime::{BackendState, PoolState, http_stats::RouteStats, state::State, tls_stats::TlsStats},
};

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Metrics over `sources`.
    #[must_use]
    pub fn new(sources: Arc<Sources>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Live(sources)));
        Self { registry }
    }

    /// The exposition text (`OpenMetrics`).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Live(Arc<Sources>);

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

/// One metric family: its descriptor, then one sample per label set.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let family = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => {
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(family)?;
            }
            _ => ConstCounter::new(value).encode(family)?,
        }
    }
    Ok(())
}

type BackendLabels = [(&'static str, String); 2];

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let view = self.0.view.load();
        let pools: Vec<Arc<PoolState>> = view.pools.iter().map(|p| p.load_full()).collect();
        listeners(&mut encoder, &view)?;
        backends(&mut encoder, &pools)?;
        states(&mut encoder, &pools)?;
        check_latency(&mut encoder, &pools)?;
        http(&mut encoder, &view, &self.0)?;
        tls(&mut encoder, &view)?;
        if let Some(a) = &self.0.announce {
            announcements(&mut encoder, &a.report())?;
        }
        let reloads = [
            (
                [("result", "ok")],
                self.0.reloads_ok.load(Ordering::Relaxed),
            ),
            (
                [("result", "failed")],
                self.0.reloads_failed.load(Ordering::Relaxed),
            ),
        ];
        family(
            &mut encoder,
            "balancer_reloads",
            "Config reloads, by result",
            MetricType::Counter,
            reloads,
        )?;
        discovery::discovery(&mut encoder, &self.0.discovery.load())?;
        xdp(&mut encoder, &self.0)
    }
}

fn listeners(encoder: &mut DescriptorEncoder, s: &View) -> Result<(), fmt::Error> {
    let info = s
        .config
        .listeners
        .iter()
        .zip(&s.xdp_served)
        .map(|(l, &xdp)| {
            let labels = [
                ("listener", l.name.clone()),
                ("mode", l.mode.to_string()),
                ("plane", crate::publish::plane_of(l, xdp).to_owned()),
            ];
            (labels, 1)
        });
    family(
        encoder,
        "balancer_listener_info",
        "1 per listener, with its configured mode and the plane serving it (an `auto` listener on `proxy` fell back from XDP)",
        MetricType::Gauge,
        info,
    )?;
    let counters: Vec<_> = s.listeners.iter().map(|st| st.snapshot()).collect();
    for key in [
        "accepted",
        "rejected_limit",
        "no_backend",
        "sessions_evicted",
        "sessions_expired",
        "sessions_replaced",
        "accept_errors",
        "proxy_headers",
        "proxy_refused",
        "tls_hellos",
        "tls_hellos_without_sni",
        "tls_hello_refused",
        "tls_hello_timeouts",
        "sockmap_relayed",
        "sockmap_spliced",
    ] {
        let samples = s.config.listeners.iter().zip(&counters).map(|(l, c)| {
            let v = c.get(key).copied().unwrap_or(0);
            ([("listener", l.name.clone())], v)
        });
        family(
            encoder,
            &format!("balancer_listener_{key}"),
            &format!("Listener counter `{key}` (see the README)"),
            MetricType::Counter,
            samples,
        )?;
    }
    Ok(())
}

fn labels(p: &PoolState, b: &BackendState) -> BackendLabels {
    [("pool", p.name.clone()), ("backend", b.address.to_string())]
}

fn backends(encoder: &mut DescriptorEncoder, pools: &[Arc<PoolState>]) -> Result<(), fmt::Error> {
    let each = |f: &dyn Fn(&BackendState) -> u64| -> Vec<(BackendLabels, u64)> {
        pools
            .iter()
            .flat_map(|p| p.backends.iter().map(move |b| (labels(p, b), f(b))))
            .collect()
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let gauge = MetricType::Gauge;
    let counter = MetricType::Counter;
    family(
        encoder,
        "balancer_backend_active",
        "Connections or UDP sessions open now",
        gauge,
        each(&|b| b.stats.active()),
    )?;
    family(
        encoder,
        "balancer_backend_connections",
        "Connections or UDP sessions opened",
        counter,
        each(&|b| load(&b.stats.total)),
    )?;
    family(
        encoder,
        "balancer_backend_connect_failures",
        "Connect attempts that failed or timed out",
        counter,
        each(&|b| load(&b.stats.connect_failures)),
    )?;
    family(
        encoder,
        "balancer_backend_tls_failures",
        "TLS handshakes with the backend that failed (counted in connect failures too)",
        counter,
        each(&|b| load(&b.stats.tls_failures)),
    )?;
    family(
        encoder,
        "balancer_backend_weight",
        "Weight for new flows now (0 while it takes none)",
        gauge,
        each(&|b| u64::from(b.weight)),
    )?;
    family(
        encoder,
        "balancer_backend_state_changes",
        "Changes of state",
        counter,
        each(&|b| load(&b.stats.state_changes)),
    )?;
    family(
        encoder,
        "balancer_health_checks",
        "Health checks run",
        counter,
        each(&|b| load(&b.stats.checks)),
    )?;
    family(
        encoder,
        "balancer_health_checks_failed",
        "Health checks failed",
        counter,
        each(&|b| load(&b.stats.checks_failed)),
    )?;
    let bytes = pools.iter().flat_map(|p| {
        p.backends.iter().flat_map(move |b| {
            [("in", &b.stats.bytes_in), ("out", &b.stats.bytes_out)].map(|(dir, a)| {
                let [pool, backend] = labels(p, b);
                ([pool, backend, ("direction", dir.to_owned())], load(a))
            })
        })
    });
    family(
        encoder,
        "balancer_backend_bytes",
        "Bytes proxied, in = client to backend",
        counter,
        bytes,
    )
}

fn states(encoder: &mut DescriptorEncoder, pools: &[Arc<PoolState>]) -> Result<(), fmt::Error> {
    let samples = pools.iter().flat_map(|p| {
        p.backends.iter().flat_map(move |b| {
            let now = b.status.state();
            State::ALL.map(|st| {
                let [pool, backend] = labels(p, b);
                (
                    [pool, backend, ("state", st.name().to_owned())],
                    u64::from(st == now),
                )
            })
        })
    });
    family(
        encoder,
        "balancer_backend_state",
        "1 for the backend's current state",
        MetricType::Gauge,
        samples,
    )
}

/// Each VIP address: announced or not, and the one reason that holds.
fn announcements(
    encoder: &mut DescriptorEncoder,
    report: &crate::announce::report::Report,
) -> Result<(), fmt::Error> {
    let vip = |v: &crate::announce::report::Vip| ("vip", v.address.to_string());
    family(
        encoder,
        "balancer_vip_announced",
        "1 while the VIP's address is on the announcement interface (BGP exports it)",
        MetricType::Gauge,
        report
            .vips
            .iter()
            .map(|v| ([vip(v)], u64::from(v.announced))),
    )?;
    let reasons = report.vips.iter().flat_map(|v| {
        crate::announce::report::Reason::LABELS.map(|r| {
            (
                [vip(v), ("reason", r.to_owned())],
                u64::from(v.reason.label() == r),
            )
        })
    });
    family(
        encoder,
        "balancer_vip_announce_reason",
        "1 for why the VIP is announced or not now",
        MetricType::Gauge,
        reasons,
    )
}

fn check_latency(
    encoder: &mut DescriptorEncoder,
    pools: &[Arc<PoolState>],
) -> Result<(), fmt::Error> {
    let mut histogram = encoder.encode_descriptor(
        "balancer_health_check_duration_seconds",
        "How long passing health checks took",
        None,
        MetricType::Histogram,
    )?;
    for p in pools {
        for b in &p.backends {
            let (sum, count, buckets) = b.stats.check_latency.snapshot();
            histogram
                .encode_family(&labels(p, b))?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}

/// The HTTP layer's requests by listener, route and status, their
/// durations, and how upstream connections were found.
fn http(encoder: &mut DescriptorEncoder, view: &View, s: &Sources) -> Result<(), fmt::Error> {
    let routes: Vec<(&str, Arc<RouteStats>)> = view
        .config
        .listeners
        .iter()
        .zip(&view.listeners)
        .filter(|(l, _)| l.http.is_some())
        .flat_map(|(l, st)| {
            st.http
                .routes()
                .into_iter()
                .map(move |r| (l.name.as_str(), r))
        })
        .collect();
    let samples = routes.iter().flat_map(|(l, r)| {
        r.codes().into_iter().map(move |(code, n)| {
            let labels = [
                ("listener", (*l).to_owned()),
                ("route", r.name.clone()),
                ("code", code.to_string()),
            ];
            (labels, n)
        })
    });
    family(
        encoder,
        "balancer_http_requests",
        "HTTP requests answered, by listener, route and status code",
        MetricType::Counter,
        samples,
    )?;
    let mut histogram = encoder.encode_descriptor(
        "balancer_http_request_duration_seconds",
        "From a request's head to the end of its answer",
        None,
        MetricType::Histogram,
    )?;
    for (l, r) in &routes {
        let (sum, count, buckets) = r.duration.snapshot();
        let labels = [("listener", (*l).to_owned()), ("route", r.name.clone())];
        histogram
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    let (new, reused) = s.upstreams.as_ref().map_or((0, 0), |u| u.counts());
    family(
        encoder,
        "balancer_http_upstream_connections",
        "Backend connections the HTTP layer used, new or kept alive",
        MetricType::Counter,
        [([("kind", "new")], new), ([("kind", "reused")], reused)],
    )?;
    let dropped: u64 = s.access_logs.lock().map_or(0, |logs| {
        logs.values()
            .map(|l| l.dropped.load(Ordering::Relaxed))
            .sum()
    });
    family(
        encoder,
        "balancer_http_access_log_dropped",
        "Access log lines dropped because the writer's queue was full",
        MetricType::Counter,
        [([("log", "all")], dropped)],
    )
}

/// Handshakes of the listeners that terminate TLS, and when each of
/// their certificates expires.
fn tls(encoder: &mut DescriptorEncoder, view: &View) -> Result<(), fmt::Error> {
    let tls: Vec<(&str, &TlsStats)> = view
        .config
        .listeners
        .iter()
        .zip(&view.listeners)
        .filter(|(l, _)| l.http.as_ref().is_some_and(|h| h.tls.is_some()))
        .map(|(l, st)| (l.name.as_str(), &*st.tls))
        .collect();
    let handshakes = tls.iter().flat_map(|(l, t)| {
        let (all, resumed) = t.handshakes();
        [("full", all - resumed), ("resumed", resumed)].map(|(kind, n)| {
            (
                [("listener", (*l).to_owned()), ("kind", kind.to_owned())],
                n,
            )
        })
    });
    family(
        encoder,
        "balancer_tls_handshakes",
        "TLS handshakes completed, full or resumed",
        MetricType::Counter,
        handshakes,
    )?;
    let failures = tls.iter().flat_map(|(l, t)| {
        t.failures().into_iter().map(move |(why, n)| {
            (
                [
                    ("listener", (*l).to_owned()),
                    ("reason", why.label().to_owned()),
                ],
                n,
            )
        })
    });
    family(
        encoder,
        "balancer_tls_handshake_failures",
        "TLS handshakes that failed, by reason",
        MetricType::Counter,
        failures,
    )?;
    let names = tls.iter().flat_map(|(l, t)| {
        t.by_name()
            .into_iter()
            .map(move |(sni, n)| ([("listener", (*l).to_owned()), ("sni", sni)], n))
    });
    family(
        encoder,
        "balancer_tls_handshakes_by_sni",
        "TLS handshakes completed, by the name the client asked for (`none`: no SNI)",
        MetricType::Counter,
        names,
    )?;
    let expiry = tls.iter().flat_map(|(l, t)| {
        t.certificates().into_iter().map(move |c| {
            let at = c
                .not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            ([("listener", (*l).to_owned()), ("file", c.file)], at)
        })
    });
    family(
        encoder,
        "balancer_tls_certificate_expiry_seconds",
        "When each served certificate expires (Unix time of its notAfter)",
        MetricType::Gauge,
        expiry,
    )
}

fn xdp(encoder: &mut DescriptorEncoder, s: &Sources) -> Result<(), fmt::Error> {
    let Some(plane) = s.xdp.as_ref().and_then(|x| x.lock().ok()) else {
        return Ok(());
    };
    kernel::kernel_log(encoder, &plane)?;
    let Ok(c) = plane.program().counters() else {
        return Ok(());
    };
    let samples = Counter::ALL
        .iter()
        .map(|k| ([("counter", k.name().to_owned())], c[*k as usize]));
    family(
        encoder,
        "balancer_xdp_packets",
        "XDP program counters: verdicts, parse outcomes, drop reasons",
        MetricType::Counter,
        samples,
    )?;
    let guard = plane.guard_drops();
    let samples = guard.iter().flat_map(|(listener, drops)| {
        Counter::GUARD.iter().zip(drops).map(move |(k, d)| {
            (
                [
                    ("listener", listener.clone()),
                    ("reason", k.name().trim_start_matches("guard_").to_owned()),
                ],
                *d,
            )
        })
    });
    family(
        encoder,
        "balancer_guard_drops",
        "Packets the XDP guard dropped, by listener and reason",
        MetricType::Counter,
        samples,
    )?;
    let samples = plane
        .limited()
        .into_iter()
        .map(|l| ([("source", l.source.to_string())], l.drops));
    family(
        encoder,
        "balancer_guard_limited_source_drops",
        "Drops of the sources the per-source limits refused in the last 10 s (top 10)",
        MetricType::Gauge,
        samples,
    )
}
