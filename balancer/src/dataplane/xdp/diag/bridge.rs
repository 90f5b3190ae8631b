//! The bridge from aya-log records to the daemon's tracing output: each
//! record becomes one event under the target `balancer::kernel`, at the
//! record's level, with the program and the source line it came from.
//! The kernel can report far faster than anyone reads, so lines beyond a
//! rate are counted and summarised instead of written.

use crate::{config::model::KernelLog, logging::KERNEL_TARGET};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Lines written per second at most, and the burst above that.
pub const RATE: u32 = 50;
/// See [`RATE`].
pub const BURST: u32 = 200;

/// One record from a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its level (never `Off`).
    pub level: log::Level,
    /// The program it came from (`balancer`, `balancer_decap`).
    pub program: &'static str,
    /// `file:line` in the program's source.
    pub at: String,
    /// The text, IPv4-mapped addresses unmapped.
    pub text: String,
}

/// Where admitted lines go: the tracing subscriber, or a test's list.
pub type Sink = Box<dyn Fn(&Line) + Send + Sync>;

/// Counts for metrics: lines by level (error first) and lines suppressed.
#[derive(Debug, Default)]
pub struct Counts {
    /// Lines written, by level: error, warn, info, debug, trace.
    pub lines: [AtomicU64; 5],
    /// Lines over the rate, counted and not written.
    pub suppressed: AtomicU64,
}

impl Counts {
    /// Lines written at `level`.
    #[must_use]
    pub fn lines(&self, level: log::Level) -> u64 {
        self.lines[level as usize - 1].load(Ordering::Relaxed)
    }

    /// Lines written, by level, error first (the order of `lines`).
    pub fn by_level(&self) -> impl Iterator<Item = (KernelLog, u64)> + '_ {
        KernelLog::ALL[1..]
            .iter()
            .zip(&self.lines)
            .map(|(level, n)| (*level, n.load(Ordering::Relaxed)))
    }
}

/// A handle on the bridge; clones share the bucket and the counts.
#[derive(Clone)]
pub struct Bridge {
    program: &'static str,
    sink: Arc<Sink>,
    bucket: Arc<Mutex<Bucket>>,
    /// Shared with metrics.
    pub counts: Arc<Counts>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Suppressed since the last summary.
    pending: u64,
    since: Instant,
}

impl Bridge {
    /// A bridge for `program`'s records into `sink`.
    #[must_use]
    pub fn new(program: &'static str, sink: Sink, counts: Arc<Counts>) -> Self {
        let now = Instant::now();
        Self {
            program,
            sink: Arc::new(sink),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(BURST),
                last: now,
                pending: 0,
                since: now,
            })),
            counts,
        }
    }

    /// The bridge into the daemon's tracing output.
    #[must_use]
    pub fn to_tracing(program: &'static str, counts: Arc<Counts>) -> Self {
        Self::new(program, Box::new(emit), counts)
    }

    /// Takes one line in at `now`: written if the rate allows, else counted.
    pub fn take(&self, line: &Line, now: Instant) {
        if self.admit(now) {
            self.write(line);
        }
    }

    /// Whether one more line may be written at `now`, taking its token; a
    /// refused one is counted. A due summary is written first.
    fn admit(&self, now: Instant) -> bool {
        let summary = {
            let Ok(mut b) = self.bucket.lock() else {
                return false;
            };
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * f64::from(RATE)).min(f64::from(BURST));
            b.last = now;
            if b.tokens < 1.0 {
                b.pending += 1;
                self.counts.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            b.tokens -= 1.0;
            b.summary(now)
        };
        if let Some(summary) = summary {
            (self.sink)(&self.summary_line(&summary));
        }
        true
    }

    fn write(&self, line: &Line) {
        self.counts.lines[line.level as usize - 1].fetch_add(1, Ordering::Relaxed);
        (self.sink)(line);
    }

    /// Writes the summary of lines suppressed so far, if any; the reader
    /// calls this when the kernel has gone quiet.
    pub fn settle(&self, now: Instant) {
        let summary = self.bucket.lock().ok().and_then(|mut b| b.summary(now));
        if let Some(summary) = summary {
            (self.sink)(&self.summary_line(&summary));
        }
    }

    fn summary_line(&self, text: &str) -> Line {
        Line {
            level: log::Level::Warn,
            program: self.program,
            at: String::new(),
            text: text.to_owned(),
        }
    }
}

impl Bucket {
    /// The text saying how many lines were suppressed since the last
    /// summary, resetting the count; at most one per [`SETTLE`], so under a
    /// lasting flood summaries do not double the lines written.
    fn summary(&mut self, now: Instant) -> Option<String> {
        if self.pending == 0 {
            self.since = now;
            return None;
        }
        if now.saturating_duration_since(self.since) < SETTLE {
            return None;
        }
        let text = format!(
            "{} kernel diagnostic lines suppressed over {:.1} s (more than {RATE} a second); \
             see balancer_xdp_log_suppressed_total",
            self.pending,
            now.saturating_duration_since(self.since).as_secs_f64()
        );
        self.pending = 0;
        self.since = now;
        Some(text)
    }
}

impl log::Log for Bridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        // The level is applied in the kernel, before a record is written.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // The token first: under a flood, refused records cost no formatting.
        if !self.admit(Instant::now()) {
            return;
        }
        let file = record.file().unwrap_or("?");
        // Only the file name: the program's build paths mean nothing here.
        let file = file.rsplit('/').next().unwrap_or(file);
        let line = Line {
            level: record.level(),
            program: self.program,
            at: format!("{file}:{}", record.line().unwrap_or(0)),
            text: unmap_ipv4(&record.args().to_string()),
        };
        self.write(&line);
    }

    fn flush(&self) {}
}

/// Writes `line` as a tracing event. The kernel's level was the filter, so
/// the daemon's default filter lets this target through at every level.
fn emit(line: &Line) {
    let (program, at, text) = (line.program, line.at.as_str(), line.text.as_str());
    match line.level {
        log::Level::Error => {
            tracing::error!(target: KERNEL_TARGET, program, at, "{text}");
        }
        log::Level::Warn => tracing::warn!(target: KERNEL_TARGET, program, at, "{text}"),
        log::Level::Info => tracing::info!(target: KERNEL_TARGET, program, at, "{text}"),
        log::Level::Debug => {
            tracing::debug!(target: KERNEL_TARGET, program, at, "{text}");
        }
        log::Level::Trace => {
            tracing::trace!(target: KERNEL_TARGET, program, at, "{text}");
        }
    }
}

/// `text` with IPv4-mapped IPv6 addresses (`::ffff:198.18.0.1`, as the
/// programs print their 16-byte keys) written as IPv4.
#[must_use]
pub fn unmap_ipv4(text: &str) -> String {
    const PREFIX: &str = "::ffff:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let after = &rest[i + PREFIX.len()..];
        let quad = after
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(after, |end| &after[..end])
            .trim_end_matches('.');
        // Only a whole dotted quad, and not the tail of a longer address.
        let whole = quad.parse::<std::net::Ipv4Addr>().is_ok()
            && !rest[..i].ends_with(|c: char| c.is_ascii_hexdigit() || c == ':');
        out.push_str(&rest[..i]);
        if !whole {
            out.push_str(PREFIX);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// How long the reader waits, once lines were suppressed, before writing
/// their summary even if the kernel says nothing more.
pub const SETTLE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting() -> (Bridge, Arc<Mutex<Vec<Line>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let bridge = Bridge::new(
            "balancer",
            Box::new(move |l: &Line| into.lock().unwrap().push(l.clone())),
            Arc::new(Counts::default()),
        );
        (bridge, seen)
    }

    fn line(text: &str) -> Line {
        Line {
            level: log::Level::Warn,
            program: "balancer",
            at: "lb.rs:1".to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn mapped_ipv4_is_unmapped_and_nothing_else_changes() {
        assert_eq!(
            unmap_ipv4("backend ::ffff:198.18.1.11 leaves"),
            "backend 198.18.1.11 leaves"
        );
        assert_eq!(unmap_ipv4("::ffff:198.18.0.1"), "198.18.0.1");
        assert_eq!(unmap_ipv4("fd00::ffff:1 and ::1"), "fd00::ffff:1 and ::1");
        assert_eq!(unmap_ipv4("a ::ffff:198.18.3 b"), "a ::ffff:198.18.3 b");
        assert_eq!(
            unmap_ipv4("x ::ffff:198.18.0.4, ::ffff:198.19.0.8."),
            "x 198.18.0.4, 198.19.0.8."
        );
        assert_eq!(unmap_ipv4("plain text"), "plain text");
    }

    #[test]
    fn a_burst_beyond_the_rate_is_counted_and_summarised_once() {
        let (bridge, seen) = collecting();
        let t0 = Instant::now();
        let n = BURST as usize + 50;
        for i in 0..n {
            bridge.take(&line(&format!("event {i}")), t0);
        }
        assert_eq!(seen.lock().unwrap().len(), BURST as usize);
        assert_eq!(bridge.counts.suppressed.load(Ordering::Relaxed), 50);
        assert_eq!(bridge.counts.lines(log::Level::Warn), u64::from(BURST));
        // A second later the bucket has room again; the next line comes
        // after a summary of what was suppressed.
        bridge.take(&line("later"), t0 + Duration::from_secs(1));
        let seen = seen.lock().unwrap();
        let tail: Vec<&str> = seen[seen.len() - 2..]
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert!(
            tail[0].starts_with("50 kernel diagnostic lines suppressed"),
            "{tail:?}"
        );
        assert_eq!(tail[1], "later");
    }

    #[test]
    fn under_a_lasting_flood_summaries_come_at_most_once_per_settle() {
        let (bridge, seen) = collecting();
        let t0 = Instant::now();
        // Ten seconds of 1,000 lines a second.
        for ms in 0..10_000u64 {
            bridge.take(&line("x"), t0 + Duration::from_millis(ms));
        }
        let seen = seen.lock().unwrap();
        let summaries = seen
            .iter()
            .filter(|l| l.text.contains("suppressed"))
            .count();
        let written = seen.len() - summaries;
        assert!(summaries <= 10, "{summaries} summaries");
        assert!(written <= (BURST + 10 * RATE) as usize, "{written} lines");
        assert!(written >= (BURST + 9 * RATE) as usize, "{written} lines");
    }

    #[test]
    fn settling_writes_the_summary_once_and_only_when_something_was_suppressed() {
        let (bridge, seen) = collecting();
        let t0 = Instant::now();
        bridge.settle(t0);
        assert!(seen.lock().unwrap().is_empty());
        for _ in 0..=BURST as usize {
            bridge.take(&line("x"), t0);
        }
        bridge.settle(t0 + SETTLE);
        bridge.settle(t0 + SETTLE * 2);
        let summaries = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.text.contains("suppressed"))
            .count();
        assert_eq!(summaries, 1);
    }
}
