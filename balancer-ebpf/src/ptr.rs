//! The one way stages touch packet memory: a bounds check against
//! `data_end` before every access, which is also what the verifier needs to
//! see. Header types are made of byte fields only (alignment 1).

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

/// The frame is shorter than the header being read.
#[derive(Clone, Copy)]
pub struct Truncated;

/// Pointer to a `T` at `offset` bytes into the frame, if the whole `T` lies
/// inside it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, Truncated> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Truncated);
    }
    Ok((start + offset) as *mut T)
}

/// Reads a `T` at `offset`.
#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, Truncated> {
    let ptr = ptr_at::<T>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the whole `T` lies inside the frame, and
    // every type read here has alignment 1.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Writes a `T` at `offset`.
#[inline(always)]
pub fn write<T: Copy>(ctx: &XdpContext, offset: usize, value: T) -> Result<(), Truncated> {
    let ptr = ptr_at::<T>(ctx, offset)?;
    // SAFETY: as in `read`; XDP frames are writable.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}
