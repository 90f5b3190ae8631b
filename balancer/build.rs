//! Builds the XDP program for `bpfel-unknown-none` with the nightly toolchain
//! (aya-build) and leaves the object in `OUT_DIR/balancer`, where
//! `dataplane::xdp::object` embeds it. `cargo xtask setup` installs what this
//! needs (nightly rust-src, bpf-linker).
use std::path::Path;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root = Path::new(&manifest)
        .parent()
        .context("balancer/ has no parent")?;
    let ebpf = root.join("balancer-ebpf");
    let common = root.join("balancer-common");
    println!("cargo:rerun-if-changed={}", common.display());
    let ebpf = ebpf.to_str().context("non-UTF-8 workspace path")?;
    aya_build::build_ebpf(
        [Package {
            name: "balancer-ebpf",
            root_dir: ebpf,
            ..Package::default()
        }],
        Toolchain::default(),
    )
    .context("building the XDP program failed; run `cargo xtask setup` to install nightly rust-src and bpf-linker")
}
