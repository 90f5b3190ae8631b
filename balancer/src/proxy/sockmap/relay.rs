//! One linked connection, from the daemon's side: the program moves the
//! bytes; this task waits for each side's FIN or error, passes a FIN on
//! once every byte before it is in the other socket, counts bytes and
//! enforces the idle timeout from the program's counters.

use std::{io, sync::atomic::Ordering, time::Duration};

use socket2::SockRef;
use tokio::{
    io::{Interest, Ready},
    net::TcpStream,
    time::{Instant, MissedTickBehavior, interval_at, sleep},
};

use super::{link::Link, sockopt::written};
use crate::proxy::splice::{Counters, RelayError, Side, Spoke};

/// How often the counters are read, as a share of the idle timeout: a
/// connection idle for `idle` is closed within a quarter of it.
const TICKS_PER_IDLE: u32 = 4;
const MIN_TICK: Duration = Duration::from_millis(50);
/// Live byte counters lag by at most this.
const MAX_TICK: Duration = Duration::from_secs(5);
/// Between looks at a destination that has not yet written all it was
/// given after its source's FIN.
const DRAIN_POLL: Duration = Duration::from_millis(1);

/// What the task knows of one connection.
struct State {
    /// Bytes moved out of the client, out of the backend, as last read.
    seen: [u64; 2],
    last_move: Instant,
    /// Directions (client -> backend, backend -> client) whose source sent
    /// its FIN and whose FIN has been passed on.
    ended: [bool; 2],
}

impl State {
    fn spoke(&self) -> Spoke {
        Spoke {
            client: self.seen[0] > 0,
            backend: self.seen[1] > 0,
        }
    }
}

/// Relays until both directions have ended, one side fails, or nothing moves
/// for `idle`; says who spoke. Counters get every byte the program moved,
/// whatever the outcome.
pub async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    link: &Link<'_>,
    idle: Duration,
    counters: &Counters<'_>,
) -> Result<Spoke, RelayError> {
    let mut state = State {
        seen: [0; 2],
        last_move: Instant::now(),
        ended: [false; 2],
    };
    let r = run(
        [(client, Side::Client), (backend, Side::Backend)],
        link,
        idle,
        counters,
        &mut state,
    )
    .await;
    // The last bytes, whatever ended the connection.
    let _ = refresh(link, counters, &mut state);
    r.map(|()| state.spoke())
}

async fn run(
    ends: [(&TcpStream, Side); 2],
    link: &Link<'_>,
    idle: Duration,
    counters: &Counters<'_>,
    state: &mut State,
) -> Result<(), RelayError> {
    let tick = (idle / TICKS_PER_IDLE).clamp(MIN_TICK, MAX_TICK);
    // One clock for the whole connection: wake-ups for passing data must
    // not push the next count further out.
    let mut ticker = interval_at(Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let [(client, _), (backend, _)] = ends;
    while state.ended != [true, true] {
        let woke = tokio::select! {
            r = client.ready(watch(state.ended[0])) => Some((0, r)),
            r = backend.ready(watch(state.ended[1])) => Some((1, r)),
            _ = ticker.tick() => None,
        };
        if let Some((i, ready)) = woke {
            let (src, side) = ends[i];
            let ready = ready.map_err(|source| RelayError::Io { side, source })?;
            if ready.is_read_closed() || ready.is_error() {
                on_ready(i, ready, ends, link, idle, state).await?;
            } else {
                // The program took the bytes; this wake-up was its
                // data-ready call passing through. Forget it: the counters
                // are read on the clock, not per chunk.
                let _ = src.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            continue;
        }
        refresh(link, counters, state).map_err(|source| RelayError::Io {
            side: Side::Client,
            source,
        })?;
        if state.last_move.elapsed() >= idle {
            return Err(RelayError::Idle {
                idle,
                spoke: state.spoke(),
            });
        }
    }
    Ok(())
}

/// A socket whose direction is still open is watched for its FIN and for
/// errors; one whose FIN has been passed on, for errors only (a reset
/// while the other direction still flows).
fn watch(ended: bool) -> Interest {
    if ended {
        Interest::ERROR
    } else {
        Interest::READABLE | Interest::ERROR
    }
}

/// Handles socket `i`'s FIN or error: an error ends the relay; a FIN is
/// passed on once the other socket has written everything before it.
async fn on_ready(
    i: usize,
    ready: Ready,
    ends: [(&TcpStream, Side); 2],
    link: &Link<'_>,
    idle: Duration,
    state: &mut State,
) -> Result<(), RelayError> {
    let (src, side) = ends[i];
    let (dst, dst_side) = ends[1 - i];
    if let Some(source) = src
        .take_error()
        .map_err(|source| RelayError::Io { side, source })?
    {
        return Err(RelayError::Io { side, source });
    }
    if ready.is_error() {
        return Err(RelayError::Io {
            side,
            source: io::Error::other("socket error"),
        });
    }
    if state.ended[i] {
        return Ok(());
    }
    drain(i, (src, side), (dst, dst_side), link, idle).await?;
    state.ended[i] = true;
    // Both directions done: closing both sockets sends the FIN.
    if state.ended[1 - i] {
        return Ok(());
    }
    // ENOTCONN means dst is already gone, which its own wake-up reports.
    match SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.raw_os_error() != Some(libc::ENOTCONN) => Err(RelayError::Io {
            side: dst_side,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Waits until `dst` has taken every byte the program moved from `src`
/// (the kernel writes redirected bytes from a work queue, so they can
/// still be on their way when the FIN is seen).
async fn drain(
    i: usize,
    (src, side): (&TcpStream, Side),
    (dst, dst_side): (&TcpStream, Side),
    link: &Link<'_>,
    idle: Duration,
) -> Result<(), RelayError> {
    let src_err = |source| RelayError::Io { side, source };
    let dst_err = |source| RelayError::Io {
        side: dst_side,
        source,
    };
    // Reading the source's TCP_INFO takes its lock, so the receive path
    // that saw the FIN, and ran the program on the bytes before it, is done.
    written(src).map_err(src_err)?;
    let moved = link.moved().map_err(src_err)?[i];
    let want = link.written_before[i] + moved;
    let deadline = Instant::now() + idle;
    loop {
        if written(dst).map_err(dst_err)? >= want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RelayError::Idle {
                idle,
                spoke: Spoke::default(),
            });
        }
        tokio::select! {
            r = dst.ready(Interest::ERROR) => {
                r.map_err(dst_err)?;
                let e = dst.take_error().map_err(dst_err)?;
                return Err(dst_err(e.unwrap_or_else(|| io::Error::other("socket error"))));
            }
            () = sleep(DRAIN_POLL) => {}
        }
    }
}

/// Adds what the program moved since the last look to the counters.
fn refresh(link: &Link<'_>, counters: &Counters<'_>, state: &mut State) -> io::Result<()> {
    let moved = link.moved()?;
    let mut any = false;
    for (i, total) in moved.into_iter().enumerate() {
        let delta = total.saturating_sub(state.seen[i]);
        if delta > 0 {
            let c = if i == 0 { counters.up } else { counters.down };
            c.fetch_add(delta, Ordering::Relaxed);
            state.seen[i] = total;
            any = true;
        }
    }
    if any {
        state.last_move = Instant::now();
    }
    Ok(())
}
