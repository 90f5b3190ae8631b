//! The access log: one line per request, JSON or the combined format,
//! written to a file or standard output by a task of its own. A request
//! only formats its line and offers it to a bounded queue; when the queue
//! is full the line is dropped and counted, so a slow disk never slows a
//! request.

use std::{
    fmt::Write as _,
    io,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncWrite, AsyncWriteExt as _},
    sync::mpsc,
};
use tracing::warn;

use crate::config::http::LogFormat;

/// Lines waiting to be written, at most.
const QUEUE: usize = 16_384;
/// How often buffered lines are flushed when the queue is quiet.
const FLUSH: Duration = Duration::from_secs(1);

/// Open access logs by destination (`None`: standard output) and format,
/// shared by the listeners that write to them and read by `/metrics`.
pub type AccessLogs =
    std::collections::HashMap<(Option<std::path::PathBuf>, LogFormat), Arc<AccessLog>>;

/// A running access log.
pub struct AccessLog {
    format: LogFormat,
    lines: mpsc::Sender<String>,
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// What one line says.
pub struct Entry<'a> {
    /// When the request began.
    pub at: SystemTime,
    /// The listener.
    pub listener: &'a str,
    /// The client.
    pub client: SocketAddr,
    /// The request line's parts.
    pub method: &'a str,
    /// The request's host, if any.
    pub host: Option<&'a str>,
    /// Its path and query.
    pub path: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: &'a str,
    /// The answer's status.
    pub status: u16,
    /// Body bytes received from the client.
    pub bytes_in: u64,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// The route's name.
    pub route: &'a str,
    /// The backend that answered, if one did.
    pub backend: Option<SocketAddr>,
    /// From the request head to the end of the answer.
    pub took: Duration,
    /// Requests sent again to reach an answer.
    pub retries: u32,
    /// `Referer`, for the combined format.
    pub referer: Option<&'a str>,
    /// `User-Agent`, for the combined format.
    pub user_agent: Option<&'a str>,
}

impl AccessLog {
    /// Opens `path` for appending (standard output when `None`) and starts
    /// the writer.
    pub fn start(path: Option<&Path>, format: LogFormat) -> io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let out: Box<dyn AsyncWrite + Send + Unpin> = match path {
            Some(p) => Box::new(tokio::fs::File::from_std(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => Box::new(tokio::io::stdout()),
        };
        tokio::spawn(write(rx, out));
        Ok(Arc::new(Self {
            format,
            lines: tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Offers `e`'s line to the writer; never waits.
    pub fn log(&self, e: &Entry<'_>) {
        let line = match self.format {
            LogFormat::Json => json(e),
            LogFormat::Combined => combined(e),
        };
        if self.lines.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write(mut lines: mpsc::Receiver<String>, out: Box<dyn AsyncWrite + Send + Unpin>) {
    let mut out = tokio::io::BufWriter::new(out);
    let mut failed = false;
    loop {
        let line = tokio::select! {
            l = lines.recv() => l,
            () = tokio::time::sleep(FLUSH) => {
                let _ = out.flush().await;
                continue;
            }
        };
        let Some(line) = line else { break };
        if let Err(e) = out.write_all(line.as_bytes()).await {
            if !failed {
                warn!(error = %e, "cannot write the access log; lines are lost until it works again");
            }
            failed = true;
        } else {
            failed = false;
        }
    }
    let _ = out.flush().await;
}

fn json(e: &Entry<'_>) -> String {
    let v = serde_json::json!({
        "time": rfc3339(e.at),
        "listener": e.listener,
        "client": e.client.to_string(),
        "method": e.method,
        "host": e.host,
        "path": e.path,
        "version": e.version,
        "status": e.status,
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "route": e.route,
        "backend": e.backend.map(|b| b.to_string()),
        "duration_ms": e.took.as_secs_f64() * 1000.0,
        "retries": e.retries,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// The combined format (Apache, nginx), then route, backend, duration in
/// seconds and retries.
fn combined(e: &Entry<'_>) -> String {
    let quoted = |s: Option<&str>| s.map_or_else(|| "-".to_owned(), |s| s.replace('"', "\\\""));
    let mut s = String::with_capacity(160);
    let _ = writeln!(
        s,
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {} {:.3} {}",
        e.client.ip(),
        clf_time(e.at),
        e.method,
        e.path.replace('"', "%22"),
        e.version,
        e.status,
        e.bytes_out,
        quoted(e.referer),
        quoted(e.user_agent),
        e.route,
        e.backend.map_or_else(|| "-".to_owned(), |b| b.to_string()),
        e.took.as_secs_f64(),
        e.retries,
    );
    s
}

/// Year, month, day, hour, minute, second (UTC) of `t`.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

fn rfc3339(t: SystemTime) -> String {
    let (year, month, day, hour, minute, second, milli) = civil(t);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, hour, minute, second, _) = civil(t);
    let month = MONTHS[(month as usize).clamp(1, 12) - 1];
    format!("{day:02}/{month}/{year:04}:{hour:02}:{minute:02}:{second:02} +0000")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{Entry, clf_time, combined, json, rfc3339};

    fn entry() -> Entry<'static> {
        Entry {
            at: UNIX_EPOCH + Duration::from_millis(1_764_604_800_123),
            listener: "web",
            client: "198.18.0.1:40000".parse().expect("addr"),
            method: "GET",
            host: Some("a.test"),
            path: "/x?y=\"1\"",
            version: "HTTP/1.1",
            status: 200,
            bytes_in: 0,
            bytes_out: 12,
            route: "api",
            backend: Some("198.18.1.11:80".parse().expect("addr")),
            took: Duration::from_millis(5),
            retries: 1,
            referer: None,
            user_agent: Some("curl/7.88.1"),
        }
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_604_800_123);
        assert_eq!(rfc3339(t), "2025-12-01T16:00:00.123Z");
        assert_eq!(clf_time(t), "01/Dec/2025:16:00:00 +0000");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_hours(264_384)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn lines_carry_every_field() {
        let c = combined(&entry());
        assert_eq!(
            c,
            "198.18.0.1 - - [01/Dec/2025:16:00:00 +0000] \"GET /x?y=%221%22 HTTP/1.1\" 200 12 \"-\" \"curl/7.88.1\" api 198.18.1.11:80 0.005 1\n"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&entry())).expect("json");
        assert_eq!(j["status"], 200);
        assert_eq!(j["route"], "api");
        assert_eq!(j["backend"], "198.18.1.11:80");
        assert_eq!(j["path"], "/x?y=\"1\"");
        assert_eq!(j["retries"], 1);
        assert_eq!(j["time"], "2025-12-01T16:00:00.123Z");
    }
}
