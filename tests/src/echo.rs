//! A small HTTP/1.1 backend that records what reaches it: it answers each
//! request with its name and the request head exactly as received, keeps
//! connections alive, and counts connections and requests, so a test can
//! see what the balancer forwarded (headers, paths, connection reuse). It
//! can also be told to hang: accept, read, and never answer.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use crate::netns::Netns;

/// A running echo backend; stops when dropped.
pub struct Echo {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: AtomicUsize,
    heads: Mutex<Vec<String>>,
    hang: AtomicBool,
    stop: AtomicBool,
}

impl Echo {
    /// Starts an echo backend named `name` in `ns` on `addr`.
    #[must_use]
    pub fn start(ns: &Netns, addr: SocketAddr, name: &str) -> Self {
        // A socket opened inside the namespace stays there; the thread
        // serving it need not.
        let listener = ns.enter(|| TcpListener::bind(addr).expect("echo bind"));
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(State::default());
        let (st, name) = (state.clone(), name.to_owned());
        thread::spawn(move || {
            while !st.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        st.connections.fetch_add(1, Ordering::Relaxed);
                        let (st, name) = (st.clone(), name.clone());
                        thread::spawn(move || serve(s, &st, &name));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, state }
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests read so far.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Every request head received, in order.
    #[must_use]
    pub fn heads(&self) -> Vec<String> {
        self.state.heads.lock().expect("heads").clone()
    }

    /// From now on, read requests and never answer them.
    pub fn hang(&self) {
        self.state.hang.store(true, Ordering::Relaxed);
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(s: TcpStream, st: &State, name: &str) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        if !read_body(&mut r, &head) {
            return;
        }
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.heads.lock().expect("heads").push(head.clone());
        if st.hang.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_mins(1));
            return;
        }
        let body = format!("{name}\n{head}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {name}\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=60\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads (and drops) the body `head` announces; false on a broken one.
fn read_body(r: &mut BufReader<TcpStream>, head: &str) -> bool {
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return false;
            };
            let mut chunk = vec![0u8; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                return false;
            }
            if n == 0 {
                return true;
            }
        }
    }
    let n: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).is_ok()
}
