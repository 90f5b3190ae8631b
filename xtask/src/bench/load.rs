//! Load generators, run from the client namespace: iperf3 for bulk
//! throughput, wrk for new-connection rate and tail latency. Each run is
//! fixed in length and wrapped in coreutils `timeout`, so a stuck tool is
//! killed rather than hanging the benchmark; their output is parsed here.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail};
use balancer_tests::Netns;
use serde_json::Value;

/// Seconds each iperf3 run measures, after `IPERF_OMIT` warm-up seconds.
pub const IPERF_SECS: u32 = 7;
/// Warm-up seconds iperf3 leaves out of its figures.
pub const IPERF_OMIT: u32 = 1;
/// Length of each wrk run.
pub const WRK_SECS: u32 = 8;
/// wrk threads.
pub const WRK_THREADS: u32 = 2;
/// wrk connections, each closed after one request.
pub const WRK_CONNS: u32 = 64;

/// One iperf3 result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Iperf {
    /// Receiver-side throughput.
    pub gbps: f64,
    /// Sender-side TCP retransmits over the run.
    pub retransmits: u64,
}

/// One wrk result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wrk {
    /// Completed requests per second (one connection each).
    pub rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Completed requests.
    pub requests: u64,
    /// Socket errors (connect, read, write, timeout).
    pub errors: u64,
    /// Responses other than 2xx/3xx.
    pub non_2xx: u64,
}

/// The iperf3 command line (for the report).
pub fn iperf_command(to: SocketAddr, streams: u32) -> Vec<String> {
    [
        "-c",
        &to.ip().to_string(),
        "-p",
        &to.port().to_string(),
        "-t",
        &IPERF_SECS.to_string(),
        "-O",
        &IPERF_OMIT.to_string(),
        "-P",
        &streams.to_string(),
        "-J",
        "--connect-timeout",
        "3000",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The wrk command line (for the report).
pub fn wrk_command(to: SocketAddr) -> Vec<String> {
    [
        &format!("-t{WRK_THREADS}"),
        &format!("-c{WRK_CONNS}"),
        &format!("-d{WRK_SECS}s"),
        "--timeout",
        "2s",
        "--latency",
        "-H",
        "Connection: close",
        &format!("http://{to}/"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Bulk throughput with `streams` parallel streams to `to`.
pub fn iperf(client: &Netns, to: SocketAddr, streams: u32) -> Result<Iperf> {
    let limit = Duration::from_secs(u64::from(IPERF_SECS + IPERF_OMIT) + 15);
    let (ok, out, err) = bounded(client, limit, "iperf3", &iperf_command(to, streams))?;
    let parsed =
        parse_iperf(&out).with_context(|| format!("iperf3 -P {streams} to {to}: {}", err.trim()));
    if !ok && parsed.is_ok() {
        bail!("iperf3 -P {streams} to {to} failed: {}", err.trim());
    }
    parsed
}

/// Short connections (`Connection: close`) against `to`.
pub fn wrk(client: &Netns, to: SocketAddr) -> Result<Wrk> {
    let limit = Duration::from_secs(u64::from(WRK_SECS) + 15);
    let (ok, out, err) = bounded(client, limit, "wrk", &wrk_command(to))?;
    if !ok {
        bail!("wrk to {to} failed: {}\n{out}", err.trim());
    }
    parse_wrk(&out).with_context(|| format!("cannot read wrk's output:\n{out}"))
}

/// Runs `program args` in `ns` under `timeout`; returns success, stdout and
/// stderr.
pub(super) fn bounded(
    ns: &Netns,
    limit: Duration,
    program: &str,
    args: &[String],
) -> Result<(bool, String, String)> {
    let mut cmd = ns.command("timeout");
    cmd.args(["-k", "2", &limit.as_secs().to_string(), program])
        .args(args)
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if out.status.code() == Some(124) {
        bail!("{program} did not finish within {limit:?}");
    }
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn parse_iperf(json: &str) -> Result<Iperf> {
    let v: Value = serde_json::from_str(json).context("iperf3 printed no JSON")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("iperf3 reports: {e}");
    }
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok(Iperf {
        gbps: bps / 1e9,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    })
}

pub(super) fn parse_wrk(text: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    let mut have_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => {
                w.rate = rate.parse()?;
                have_rate = true;
            }
            ["50%", v] => w.p50_ms = latency_ms(v)?,
            ["99%", v] => w.p99_ms = latency_ms(v)?,
            [n, "requests", "in", ..] => w.requests = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                w.errors = rest
                    .iter()
                    .filter_map(|t| t.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non_2xx = n.parse()?,
            _ => {}
        }
    }
    if !have_rate {
        bail!("no `Requests/sec:` line");
    }
    Ok(w)
}

/// wrk's latency text (`812.00us`, `1.25ms`, `2.00s`, `1.50m`) in ms.
fn latency_ms(v: &str) -> Result<f64> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in `{v}`"))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("odd latency `{v}`"))?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unknown unit in `{v}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 8s test @ http://198.18.0.10:80/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.27ms    1.12ms  27.16ms   84.33%
    Req/Sec     9.85k   612.22    11.03k    71.25%
  Latency Distribution
     50%    3.09ms
     75%    3.62ms
     90%    4.32ms
     99%  812.00us
  156863 requests in 8.00s, 39.09MB read
  Socket errors: connect 3, read 0, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  19604.05
Transfer/sec:      4.89MB
";

    #[test]
    fn reads_wrk() {
        let w = parse_wrk(WRK).expect("parse");
        assert!((w.rate - 19_604.05).abs() < 1e-9);
        assert!((w.p50_ms - 3.09).abs() < 1e-9);
        assert!((w.p99_ms - 0.812).abs() < 1e-9);
        assert_eq!((w.requests, w.errors, w.non_2xx), (156_863, 5, 7));
        assert!(parse_wrk("nothing useful").is_err());
    }

    #[test]
    fn reads_iperf() {
        let j =
            r#"{"end":{"sum_sent":{"retransmits":12},"sum_received":{"bits_per_second":2.5e10}}}"#;
        let i = parse_iperf(j).expect("parse");
        assert!((i.gbps - 25.0).abs() < 1e-9);
        assert_eq!(i.retransmits, 12);
        let e = parse_iperf(r#"{"error":"unable to connect to server"}"#).expect_err("error");
        assert!(e.to_string().contains("unable to connect"));
    }

    #[test]
    fn latency_units() {
        assert!((latency_ms("2.00s").expect("s") - 2000.0).abs() < 1e-9);
        assert!(latency_ms("12").is_err());
    }
}
