//! A bounded pool of kernel pipes for splice(2). A pipe is taken only while
//! bytes are in flight and returned empty, so an idle connection holds no
//! pipe and costs two file descriptors, not six (`HAProxy`'s `maxpipes`). When
//! the pool is exhausted the relay copies through userspace for that chunk.
#![expect(
    unsafe_code,
    reason = "pipe2, fcntl and splice through libc; each block has a SAFETY note"
)]

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Pipe capacity we ask the kernel for. Bigger pipes mean fewer syscalls per
/// byte; this size keeps 256 pipes inside the default per-user pipe budget
/// (`fs.pipe-user-pages-soft`, 64 MiB).
pub const PIPE_SIZE: usize = 256 * 1024;

/// Default pool bound.
pub const MAX_PIPES: usize = 256;

/// An empty pipe: read end and write end.
pub struct Pipe {
    /// Read end.
    pub read: OwnedFd,
    /// Write end.
    pub write: OwnedFd,
    /// Capacity the kernel granted.
    pub capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A failed resize (limits) leaves the default 64 KiB pipe: still works.
        // SAFETY: plain fcntl on a descriptor we own.
        let granted = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                libc::c_int::try_from(PIPE_SIZE).unwrap_or(libc::c_int::MAX),
            )
        };
        // SAFETY: as above.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity = usize::try_from(if granted > 0 { granted } else { size }).unwrap_or(65_536);
        Ok(Self {
            read,
            write,
            capacity,
        })
    }
}

/// The pool.
pub struct PipePool {
    free: Mutex<Vec<Pipe>>,
    created: AtomicUsize,
    max: usize,
}

impl PipePool {
    /// A pool that never holds more than `max` pipes in total.
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            created: AtomicUsize::new(0),
            max,
        }
    }

    /// Leases an empty pipe, or `None` when all `max` are in use or the
    /// kernel refuses a new one (fd limit): the caller copies in userspace
    /// instead.
    pub fn lease(&self) -> Option<Lease<'_>> {
        self.take().map(|pipe| Lease {
            pool: self,
            pipe: Some(pipe),
            pending: 0,
        })
    }

    fn take(&self) -> Option<Pipe> {
        if let Some(p) = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Some(p);
        }
        if self.created.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.created.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Pipe::new()
            .map_err(|_| self.created.fetch_sub(1, Ordering::AcqRel))
            .ok()
    }

    fn put(&self, pipe: Pipe) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pipe);
    }

    fn discard(&self, pipe: Pipe) {
        drop(pipe);
        self.created.fetch_sub(1, Ordering::AcqRel);
    }

    /// Pipes in existence (free or in use).
    #[must_use]
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Acquire)
    }
}

/// A pipe on loan from the pool. Dropping it returns the pipe when empty
/// and closes it when bytes are still inside (the connection died mid-chunk
/// or was cancelled), so neither a cancelled relay nor an error path can leak
/// a pipe or hand a dirty one to another connection.
pub struct Lease<'a> {
    pool: &'a PipePool,
    pipe: Option<Pipe>,
    /// Bytes spliced in and not yet out.
    pub pending: usize,
}

impl Lease<'_> {
    /// The leased pipe.
    #[must_use]
    pub fn pipe(&self) -> &Pipe {
        self.pipe.as_ref().expect("present until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            if self.pending == 0 {
                self.pool.put(pipe);
            } else {
                self.pool.discard(pipe);
            }
        }
    }
}

/// splice(2) between two descriptors, non-blocking, moving pages where possible.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are allowed for sockets and pipes; the kernel
    // validates both descriptors.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::PipePool;

    #[test]
    fn pool_is_bounded_and_reuses() {
        let pool = PipePool::new(2);
        let a = pool.lease().expect("first");
        let b = pool.lease().expect("second");
        assert!(pool.lease().is_none(), "third must be refused");
        assert!(a.pipe().capacity >= 4096);
        drop(a);
        assert_eq!(pool.created(), 2, "an empty pipe goes back to the pool");
        let mut c = pool.lease().expect("reused");
        c.pending = 10;
        drop(c);
        assert_eq!(pool.created(), 1, "a dirty pipe is closed, not reused");
        assert!(pool.lease().is_some());
        drop(b);
    }
}
