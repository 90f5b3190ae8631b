//! Rebuild the eBPF object when the linker changes: bpf-linker is not a cargo
//! dependency, so cargo would not notice a new one on its own.
//!
//! Also inline the diagnostics: aya-log writes each record in a closure
//! that LLVM's default threshold leaves out of line, which makes every
//! report site a BPF-to-BPF call. The balancer's frame is close to the
//! 512-byte stack limit, which the kernel applies to the caller's and the
//! callee's frames together, so out-of-line reports do not load; inlined,
//! they live on paths no packet takes unless something went wrong.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // Only bpf-linker takes it; the host build of the crate (a stub `main`,
    // for clippy and `cargo test --workspace`) links with the system's cc.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--llvm-args=-inline-threshold=1500");
    }
}
