//! The benchmark harness's layouts. `BPF_PROG_TEST_RUN` repeats a program
//! on the same buffer without restoring it, so a program that rewrites the
//! frame's size (IP-in-IP pushes a header) sees its own output from the
//! second repeat on. The harness program `bench_restore` puts the original
//! frame back before each run and tail-calls the program under test; its
//! own cost is measured on the bare program and subtracted.

/// The one [`BenchFrame`] entry: the frame to restore.
pub const BENCH_FRAME_MAP: &str = "BENCH_FRAME_V1";
/// Slot 0: the program under test, tail-called by the harness.
pub const BENCH_TARGET_MAP: &str = "BENCH_TARGET_V1";
/// The harness program's name in the object.
pub const BENCH_RESTORE_ENTRY: &str = "bench_restore";
/// The walking harness's program name: it rewrites an IPv4 TCP or UDP
/// frame's source address and port to the next of [`BenchWalk::flows`]
/// flows, then tail-calls the program under test, so repeated runs spread
/// over a flow table of that many live flows as real traffic does.
pub const BENCH_WALK_ENTRY: &str = "bench_walk";
/// The one [`BenchWalk`] entry.
pub const BENCH_WALK_MAP: &str = "BENCH_WALK_V1";
/// The first source address the walk uses (198.18.128.0); flow `i` comes
/// from this plus `i >> 14`, port `1024 + (i & 0x3fff)`.
pub const BENCH_WALK_BASE: [u8; 4] = [198, 18, 128, 0];

/// The walk's state: how many flows, and the next one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BenchWalk {
    /// Flows walked, 1 or more.
    pub flows: u32,
    /// The next flow's number.
    pub next: u32,
}

impl BenchWalk {
    /// Source address and port of flow `i`.
    #[must_use]
    pub const fn source(i: u32) -> ([u8; 4], u16) {
        let high = i >> 14;
        let b = BENCH_WALK_BASE;
        let addr = u32::from_be_bytes(b).wrapping_add(high).to_be_bytes();
        (addr, 1024 + (i & 0x3fff) as u16)
    }
}

/// The longest frame the harness restores.
pub const BENCH_FRAME_MAX: usize = 124;

/// A frame to restore: its length and bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BenchFrame {
    /// Bytes used of `bytes`, 1 to [`BENCH_FRAME_MAX`].
    pub len: u32,
    /// The frame.
    pub bytes: [u8; BENCH_FRAME_MAX],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, an integer and a byte array with no padding
    // (4 + 124 bytes): any bit pattern is valid, none uninitialised.
    unsafe impl aya::Pod for super::BenchFrame {}
    // SAFETY: `#[repr(C)]`, two u32, no padding.
    unsafe impl aya::Pod for super::BenchWalk {}
}
