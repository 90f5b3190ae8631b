//! An open-loop HTTP/1.1 load generator for the HTTP benchmark: requests
//! are due at a fixed rate whatever the server does, and each latency is
//! measured from when the request was due, so a server that falls behind
//! shows it (no coordinated omission, as wrk2 measures).
//!
//! `open_loop URL RATE SECONDS CONNECTIONS` prints one JSON line:
//! `{"rate": .., "due": .., "sent": .., "errors": .., "p50_ms": .., "p99_ms": .., "max_ms": ..}`
//! (requests still unanswered at the end are not in the percentiles: compare
//! `sent` with `due`).
//! Bounded: at most RATE x SECONDS requests, and it stops 10 s after the
//! last one was due whatever is still outstanding.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Mutex};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, rate, seconds, connections] = args.as_slice() else {
        bail!("usage: open_loop URL RATE SECONDS CONNECTIONS");
    };
    let uri: hyper::Uri = url.parse().context("URL")?;
    let rate: f64 = rate.parse().context("RATE")?;
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let connections: usize = connections.parse().context("CONNECTIONS")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(uri, rate, seconds, connections))
}

async fn run(uri: hyper::Uri, rate: f64, seconds: f64, connections: usize) -> Result<()> {
    let authority = uri.authority().context("URL without host")?.clone();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rate x seconds is a small positive count"
    )]
    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(200);
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        usize::try_from(total).unwrap_or(0),
    )));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (mut send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (next, latencies, errors, uri, authority) = (
            next.clone(),
            latencies.clone(),
            errors.clone(),
            uri.clone(),
            authority.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                // Requests are handed out in the order they are due: a
                // worker that is late takes the next due one, and its
                // wait counts in that request's latency.
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let due = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let req = Request::get(uri.clone())
                    .header(hyper::header::HOST, authority.as_str())
                    .body(Empty::<Bytes>::new())
                    .expect("a valid request");
                let ok = match send.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.lock().await.push(due.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }));
    }
    let last_due = start + interval.mul_f64(total as f64);
    let deadline = last_due + Duration::from_secs(10);
    for w in workers {
        let _ = tokio::time::timeout_at(deadline.into(), w).await;
    }
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    let pct = |p: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "an index into a non-empty vector"
        )]
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "rate": rate,
            "due": total,
            "sent": l.len(),
            "errors": errors.load(Ordering::Relaxed),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
    Ok(())
}
