//! Rebuild the eBPF object when the linker changes: bpf-linker is not a cargo
//! dependency, so cargo would not notice a new one on its own.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
