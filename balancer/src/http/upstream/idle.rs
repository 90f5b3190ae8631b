//! Kept-alive HTTP/1.1 connections to backends, per backend, bounded in
//! count and idle time. A connection goes back to its list from the
//! answer's body, at the moment that body has been read to its end: no
//! task waits for it, and the next request finds it at once (it then waits
//! for hyper to call the connection ready, which takes no time once the
//! answer is read). A body dropped before its end takes the connection
//! with it, since hyper cannot reuse a connection with an answer half read.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::{body::Incoming, client::conn::http1::SendRequest};

use super::Origin;
use crate::http::body::{Body, BoxError};

/// An idle connection and since when.
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
    timeout: Duration,
}

impl Idle {
    fn usable(&self) -> bool {
        self.since.elapsed() < self.timeout && !self.sender.is_closed()
    }
}

/// The idle connections of every backend.
#[derive(Default)]
pub struct IdleLists(Mutex<HashMap<Origin, Vec<Idle>>>);

impl IdleLists {
    /// The newest usable idle connection to `origin`: the most recently
    /// used one is the least likely to have been closed by the backend.
    pub fn take(&self, origin: Origin) -> Option<SendRequest<Body>> {
        let mut lists = self.0.lock().ok()?;
        let list = lists.get_mut(&origin)?;
        while let Some(i) = list.pop() {
            if i.usable() {
                return Some(i.sender);
            }
        }
        None
    }

    /// Keeps `sender` for later requests to `origin`, if its list has
    /// room.
    fn put(&self, origin: Origin, sender: SendRequest<Body>, room: Room) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut lists) = self.0.lock() else { return };
        let list = lists.entry(origin).or_default();
        if list.len() < room.max_idle {
            list.push(Idle {
                sender,
                since: Instant::now(),
                timeout: room.timeout,
            });
        }
    }

    /// Closes connections idle past their time or closed by the backend.
    pub fn sweep(&self) {
        if let Ok(mut lists) = self.0.lock() {
            for list in lists.values_mut() {
                list.retain(Idle::usable);
            }
            lists.retain(|_, l| !l.is_empty());
        }
    }
}

/// How many idle connections a backend keeps, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    /// At most this many (0: none is kept).
    pub max_idle: usize,
    /// Each for at most this long.
    pub timeout: Duration,
}

/// Where a connection goes when its answer has been read.
pub struct Return {
    /// The lists it goes back to.
    pub lists: Arc<IdleLists>,
    /// Its backend and TLS settings.
    pub origin: Origin,
    /// The connection.
    pub sender: SendRequest<Body>,
    /// The backend's bounds.
    pub room: Room,
}

/// A backend's answer body that returns its connection at its end.
pub struct Returning {
    inner: Incoming,
    back: Option<Return>,
}

impl Returning {
    /// `inner`, returning `back` when it has been read to its end (at
    /// once when it is empty).
    pub fn new(inner: Incoming, back: Return) -> Self {
        let mut me = Self {
            inner,
            back: Some(back),
        };
        if me.inner.is_end_stream() {
            me.give_back();
        }
        me
    }

    fn give_back(&mut self) {
        if let Some(r) = self.back.take()
            && r.room.max_idle > 0
        {
            r.lists.put(r.origin, r.sender, r.room);
        }
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.give_back(),
            Some(Ok(_)) => {}
            // A broken answer: the connection is not kept.
            Some(Err(_)) => this.back = None,
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
