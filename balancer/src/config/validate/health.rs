//! A pool's `health` check: timings that cannot overlap, counts within
//! [`MAX_RISE_FALL`], and the keys of one kind of check refused on
//! another, so a `path` on a TCP check is an error rather than ignored.
//! The HTTP values are checked whatever the kind, so one run reports a
//! bad value beside the key that does not belong; only the check's own
//! kind keeps them, in its [`Probe`] variant.

use super::Problems;
use crate::config::{
    defaults::{
        DEFAULT_EXPECT_STATUS, DEFAULT_FALL, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT,
        DEFAULT_HTTP_METHOD, DEFAULT_HTTP_PATH, DEFAULT_JITTER_DIVISOR, DEFAULT_PASSIVE,
        DEFAULT_RISE, DEFAULT_UDP_SEND,
    },
    limits::MAX_RISE_FALL,
    model::{HealthCheck, HttpProbe, Probe, UdpProbe},
    raw::{HealthKind, RawHealth},
    values,
};

/// The check at `at` (like `pools[0].health`).
pub(super) fn health(h: &RawHealth, at: &str, p: &mut Problems) -> HealthCheck {
    let interval = p.duration(
        &format!("{at}.interval"),
        h.interval.as_ref(),
        DEFAULT_HEALTH_INTERVAL,
    );
    let timeout = p.duration(
        &format!("{at}.timeout"),
        h.timeout.as_ref(),
        DEFAULT_HEALTH_TIMEOUT,
    );
    if timeout > interval {
        p.add(
            format!("{at}.timeout"),
            format!(
                "`{timeout:?}` is longer than the interval `{interval:?}` (checks would overlap)"
            ),
        );
    }
    let path = h
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_PATH.to_owned());
    if h.kind == HealthKind::Http && !path.starts_with('/') {
        p.add(
            format!("{at}.path"),
            format!("`{path}` must start with `/`"),
        );
    }
    wrong_kind_keys(h, at, p);
    let jitter = p.duration(
        &format!("{at}.jitter"),
        h.jitter.as_ref(),
        interval / DEFAULT_JITTER_DIVISOR,
    );
    if jitter >= interval && !interval.is_zero() {
        p.add(
            format!("{at}.jitter"),
            format!("`{jitter:?}` must be shorter than the interval `{interval:?}`"),
        );
    }
    let method = h
        .method
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_METHOD.to_owned());
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
    let expect_status = h
        .expect_status
        .as_deref()
        .map_or(Some(DEFAULT_EXPECT_STATUS), |s| {
            p.check(&format!("{at}.expect_status"), values::status_range(s))
        });
    let rise = p.bounded(&format!("{at}.rise"), h.rise, DEFAULT_RISE, MAX_RISE_FALL);
    let fall = p.bounded(&format!("{at}.fall"), h.fall, DEFAULT_FALL, MAX_RISE_FALL);
    let probe = match h.kind {
        HealthKind::Tcp => Probe::Tcp,
        HealthKind::Http => Probe::Http(HttpProbe {
            method,
            path,
            host: h.host.clone(),
            expect_status: expect_status.unwrap_or(DEFAULT_EXPECT_STATUS),
        }),
        HealthKind::Udp => Probe::Udp(UdpProbe {
            send: h
                .send
                .clone()
                .unwrap_or_else(|| DEFAULT_UDP_SEND.to_owned()),
            expect: h.expect.clone(),
        }),
    };
    HealthCheck {
        probe,
        interval,
        timeout,
        rise,
        fall,
        jitter,
        passive: h.passive.unwrap_or(DEFAULT_PASSIVE),
    }
}

/// Refuses the keys only another kind of check reads.
fn wrong_kind_keys(h: &RawHealth, at: &str, p: &mut Problems) {
    let keys = [
        ("path", h.path.is_some(), HealthKind::Http),
        ("method", h.method.is_some(), HealthKind::Http),
        ("host", h.host.is_some(), HealthKind::Http),
        ("expect_status", h.expect_status.is_some(), HealthKind::Http),
        ("send", h.send.is_some(), HealthKind::Udp),
        ("expect", h.expect.is_some(), HealthKind::Udp),
    ];
    for (key, set, kind) in keys {
        if set && h.kind != kind {
            p.add(
                format!("{at}.{key}"),
                format!("only `{}` checks take `{key}`", kind.name()),
            );
        }
    }
}
