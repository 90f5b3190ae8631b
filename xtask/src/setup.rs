//! Idempotent bootstrap: each step checks first and does nothing when its
//! result is already there, so a second `cargo xtask setup` takes seconds.
//!
//! - nightly `rust-src` (the eBPF crate is built with `-Z build-std=core`);
//! - `bpf-linker`, built against the nightly toolchain's own LLVM through a
//!   prefix folder holding a `libLLVM.so` symlink, so no system LLVM is needed;
//! - the Debian packages the tests and benchmarks drive.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::shell::{has, output, status};

/// Debian packages the namespace tests and benchmarks use, with a command
/// that proves each is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("nginx", "/usr/sbin/nginx"),
    (
        "libnginx-mod-stream",
        "/usr/lib/nginx/modules/ngx_stream_module.so",
    ),
    ("haproxy", "/usr/sbin/haproxy"),
    ("iperf3", "/usr/bin/iperf3"),
    ("wrk", "/usr/bin/wrk"),
    ("socat", "/usr/bin/socat"),
    ("curl", "/usr/bin/curl"),
    ("iproute2", "/usr/sbin/ip"),
    ("ethtool", "/sbin/ethtool"),
    ("procps", "/sbin/sysctl"),
    ("openssl", "/usr/bin/openssl"),
    ("prometheus", "/usr/bin/prometheus"),
    (
        "python3-matplotlib",
        "/usr/lib/python3/dist-packages/matplotlib/__init__.py",
    ),
    // WebSocket client and server for the HTTP layer's upgrade tests.
    (
        "python3-websockets",
        "/usr/lib/python3/dist-packages/websockets/__init__.py",
    ),
    // h2load, the HTTP/2 load generator of the HTTP benchmark.
    ("nghttp2-client", "/usr/bin/h2load"),
    // HTTP/2 frames built by hand for the flood tests.
    (
        "python3-h2",
        "/usr/lib/python3/dist-packages/h2/__init__.py",
    ),
    // TLS scanners run against a TLS listener by the test suite.
    ("sslscan", "/usr/bin/sslscan"),
    ("testssl.sh", "/usr/bin/testssl"),
    // The BGP engine of the scale-out tests (router and balancer hosts).
    ("bird2", "/usr/sbin/bird"),
    // Packet filters the scale-out tests set inside namespaces.
    ("nftables", "/usr/sbin/nft"),
    // The authoritative DNS server of the discovery tests (knotd, knotc).
    ("knot", "/usr/sbin/knotd"),
    // The dashboard's browser test: headless Chromium through WebDriver.
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    (
        "python3-selenium",
        "/usr/lib/python3/dist-packages/selenium/__init__.py",
    ),
    // `cargo xtask dist` checks the Debian package with it.
    ("lintian", "/usr/bin/lintian"),
    ("dpkg-dev", "/usr/bin/dpkg-shlibdeps"),
    // The package test lints the packaged unit with systemd-analyze.
    ("systemd", "/usr/bin/systemd-analyze"),
];

/// Everything: toolchain and packages.
pub fn all() -> Result<()> {
    toolchain()?;
    packages()
}

/// Nightly rust-src and bpf-linker.
pub fn toolchain() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
        .context("the nightly toolchain is needed to build the XDP program; install it with `rustup toolchain install nightly`")?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: adding rust-src to the nightly toolchain");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    // bpf-linker links the nightly toolchain's libLLVM dynamically; it runs
    // (and is run by aya-build) under `rustup run nightly`, which puts that
    // library on the loader path.
    let linker_ok = Command::new("rustup")
        .args(["run", "nightly", "bpf-linker", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if linker_ok {
        return Ok(());
    }
    let llvm_major = llvm_major()?;
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let lib = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so"))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so* in {}; is the nightly toolchain complete?",
                lib_dir.display()
            )
        })?;
    let prefix = cache_dir().join(format!("llvm-{llvm_major}"));
    let link = prefix.join("lib/libLLVM.so");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)
        .with_context(|| format!("cannot link {}", link.display()))?;
    eprintln!(
        "setup: building bpf-linker against the nightly toolchain's LLVM {llvm_major} (a few minutes, once)"
    );
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{llvm_major}"))
            .env("LLVM_PREFIX", &prefix),
    )
}

fn llvm_major() -> Result<u32> {
    let v = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let line = v
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` printed no LLVM version")?;
    line.split('.')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("odd LLVM version `{line}`"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("balancer-xtask")
}

/// The Debian packages, installed only when one is missing.
pub fn packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, probe)| !std::path::Path::new(probe).exists())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !has("apt-get", "--version") {
        bail!("missing packages {missing:?} and no apt-get to install them; install them by hand");
    }
    eprintln!("setup: installing {}", missing.join(" "));
    status(Command::new("apt-get").args(["update", "-q"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // Debian starts the daemons on install; the tests run their own copies
    // inside namespaces, and a system nginx on :80 would only get in the way.
    for svc in ["nginx", "haproxy", "bird", "knot"] {
        let _ = Command::new("systemctl")
            .args(["disable", "--now", svc])
            .status();
        let _ = Command::new("service").args([svc, "stop"]).status();
    }
    Ok(())
}
