//! The panic handler every BPF object of this crate links (each bin
//! includes this file as a module).

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so
    // this is never executed in a loaded program.
    unsafe { core::hint::unreachable_unchecked() }
}
