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
}
