//! Bodies as the HTTP layer streams them: one boxed type for backend
//! answers and the layer's own, a request body guard that bounds the pause
//! between pieces and the total size (and says which bound it hit), and a
//! wrapper that holds something (an in-flight count, a pooled connection's
//! return) until a body has been sent to its end.

use std::{
    error::Error,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt as _, Empty, Full, combinators::BoxBody};
use tokio::time::Sleep;

/// Any error a body may end with.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The body type of every response the layer sends, and of every request
/// it forwards.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// An empty body.
#[must_use]
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// Which bound a guarded request body hit, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Breach {
    /// None.
    None = 0,
    /// The client paused longer than the body timeout.
    Idle = 1,
    /// The body grew past the size limit.
    TooLarge = 2,
}

/// Shared record of a [`Guarded`] body's breach, read by whoever answers
/// the client once the upstream request failed.
#[derive(Clone, Debug, Default)]
pub struct BreachFlag(Arc<AtomicU8>);

impl BreachFlag {
    /// The breach recorded.
    #[must_use]
    pub fn get(&self) -> Breach {
        match self.0.load(Ordering::Relaxed) {
            1 => Breach::Idle,
            2 => Breach::TooLarge,
            _ => Breach::None,
        }
    }

    fn set(&self, b: Breach) {
        self.0.store(b as u8, Ordering::Relaxed);
    }
}

/// Why a guarded body ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client paused too long.
    #[error("the client sent nothing of the request body for {0:?}")]
    Idle(Duration),
    /// The body is larger than allowed.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(u64),
}

/// A request body with a bound on the pause between frames and, when
/// given, on its total size.
pub struct Guarded<B> {
    inner: B,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    limit: Option<u64>,
    seen: Arc<AtomicU64>,
    flag: BreachFlag,
}

impl<B> Guarded<B> {
    /// Guards `inner`, counting its bytes in `seen`; a breach is recorded
    /// in `flag`.
    pub fn new(
        inner: B,
        idle: Duration,
        limit: Option<u64>,
        seen: Arc<AtomicU64>,
        flag: BreachFlag,
    ) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            limit,
            seen,
            flag,
        }
    }
}

impl<B> HttpBody for Guarded<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    let seen = this.seen.fetch_add(n, Ordering::Relaxed) + n;
                    if let Some(limit) = this.limit
                        && seen > limit
                    {
                        this.flag.set(Breach::TooLarge);
                        return Poll::Ready(Some(Err(BodyError::TooLarge(limit).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.flag.set(Breach::Idle);
                    return Poll::Ready(Some(Err(BodyError::Idle(idle).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that holds `T` until it has been sent to its end or dropped,
/// counting its bytes when given a counter.
pub struct Holding<B, T> {
    inner: B,
    held: Option<T>,
    sent: Option<Arc<AtomicU64>>,
}

impl<B, T> Holding<B, T> {
    /// `inner`, holding `held`.
    pub fn new(inner: B, held: T) -> Self {
        Self {
            inner,
            held: Some(held),
            sent: None,
        }
    }

    /// `inner`, holding `held` and counting its bytes in `sent`.
    pub fn counting(inner: B, held: T, sent: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            held: Some(held),
            sent: Some(sent),
        }
    }
}

impl<B, T> HttpBody for Holding<B, T>
where
    B: HttpBody<Data = Bytes> + Unpin,
    T: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(sent)) = (&r, &self.sent)
            && let Some(data) = frame.data_ref()
        {
            sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            // The end: let go at once, not when hyper drops the body.
            self.held = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
