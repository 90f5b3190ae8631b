//! UDP request/response load for the benchmarks: `--sockets` client
//! sockets (each its own source port, so a proxy sees that many clients),
//! each with one request in flight, answered pairs counted for `--seconds`.
//! A request unanswered for 200 ms is counted lost and sent again. Prints
//! one JSON line: `{"pairs": N, "lost": N, "seconds": S, "rate": R}`.
//!
//! Usage: `udp_load --to ADDR [--sockets 64] [--threads 2] [--seconds 5]
//! [--size 64]`. Bounded by `--seconds` (at most 60), it stops by itself.

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
    time::{Duration, Instant},
};

/// How long a request may go unanswered before it counts as lost.
const LOST_AFTER: Duration = Duration::from_millis(200);

struct Args {
    to: SocketAddr,
    sockets: usize,
    threads: usize,
    seconds: u64,
    size: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        to: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        sockets: 64,
        threads: 2,
        seconds: 5,
        size: 64,
    };
    let mut to = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--to" => to = Some(value.parse().map_err(|e| format!("--to {value}: {e}"))?),
            "--sockets" => a.sockets = usize::try_from(num()?).map_err(|e| e.to_string())?,
            "--threads" => a.threads = usize::try_from(num()?).map_err(|e| e.to_string())?,
            "--seconds" => a.seconds = num()?.min(60),
            "--size" => a.size = usize::try_from(num()?).map_err(|e| e.to_string())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    a.to = to.ok_or("--to ADDR is required")?;
    if a.sockets == 0 || a.threads == 0 || a.size == 0 || a.size > 65_000 {
        return Err("--sockets, --threads and --size must be positive (size at most 65000)".into());
    }
    Ok(a)
}

/// One thread's share: its sockets, each with one request in flight.
fn run(to: SocketAddr, sockets: usize, size: usize, until: Instant) -> io::Result<(u64, u64)> {
    let payload = vec![b'q'; size];
    let mut socks = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        s.connect(to)?;
        s.set_nonblocking(true)?;
        socks.push(s);
    }
    let mut sent_at = vec![Instant::now(); sockets];
    for s in &socks {
        // A full send buffer is a lost request, found by the timeout.
        let _ = s.send(&payload);
    }
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let (mut pairs, mut lost) = (0u64, 0u64);
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        // SAFETY: `fds` is a valid array of pollfd for its length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let now = Instant::now();
        for (i, fd) in fds.iter_mut().enumerate() {
            if fd.revents & libc::POLLIN != 0 {
                fd.revents = 0;
                let mut answered = false;
                while socks[i].recv(&mut buf).is_ok() {
                    answered = true;
                }
                if answered {
                    pairs += 1;
                    sent_at[i] = now;
                    let _ = socks[i].send(&payload);
                }
            } else if now.duration_since(sent_at[i]) > LOST_AFTER {
                lost += 1;
                sent_at[i] = now;
                let _ = socks[i].send(&payload);
            }
        }
    }
    Ok((pairs, lost))
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp_load: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let per = a.sockets.div_ceil(a.threads);
    let handles: Vec<_> = (0..a.threads)
        .map(|_| thread::spawn(move || run(a.to, per, a.size, until)))
        .collect();
    let (mut pairs, mut lost) = (0u64, 0u64);
    for h in handles {
        match h.join() {
            Ok(Ok((p, l))) => {
                pairs += p;
                lost += l;
            }
            Ok(Err(e)) => {
                eprintln!("udp_load: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("udp_load: a load thread panicked");
                std::process::exit(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"pairs\": {pairs}, \"lost\": {lost}, \"seconds\": {secs:.3}, \"rate\": {:.1}}}",
        pairs as f64 / secs
    );
}
