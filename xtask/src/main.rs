//! `cargo xtask`: what cargo alone cannot do. `setup` installs the eBPF
//! toolchain and the test peers (idempotently), `run` serves the demo,
//! `test` runs unit, packet and namespace tests (replaying the fuzz
//! corpora), `dist` builds the Debian package, `fuzz` fuzzes the input parsers, `soak` runs every plane for
//! long under flaps, reloads and upgrades, `bench` measures against peers.

mod bench;
mod dist;
mod fuzz;
mod setup;
mod shell;
mod soak;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "balancer project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install nightly rust-src, bpf-linker and the Debian test peers (idempotent).
    Setup,
    /// Build the release binary with the embedded XDP program.
    Build,
    /// Set up, build and run the balancer (no arguments: the embedded demo).
    Run {
        /// Arguments after `balancer run`, e.g. `-c config/web-maglev.yaml`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run every test: unit, BPF packet and namespace end-to-end.
    Test,
    /// Build the Debian package (binary, unit, man pages, completions,
    /// examples) into target/dist/ and check it with lintian.
    Dist {
        /// Package the debug build instead of the release one.
        #[arg(long)]
        debug: bool,
    },
    /// Fuzz the input parsers (cargo-fuzz, nightly) from their committed
    /// corpora; prints runs, executions per second and coverage.
    Fuzz {
        /// One target (default: every one in turn).
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u32,
    },
    /// Every plane under load for N minutes while backends flap, the config
    /// reloads and the daemon upgrades; writes docs/soak.{md,json,png}.
    Soak {
        /// Length of the run.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Frames dropped per thousand, each way, on the backend links
        /// (default 20).
        #[arg(long)]
        loss_permille: Option<u32>,
    },
    /// Benchmarks against peers; writes docs/bench/.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    match Cli::parse().task {
        Task::Setup => setup::all(),
        Task::Build => {
            setup::toolchain()?;
            shell::cargo(&root, &["build", "--release", "-p", "balancer"])
        }
        Task::Run { args } => {
            setup::toolchain()?;
            let mut cmd = vec!["run", "--release", "-p", "balancer", "--", "run"];
            cmd.extend(args.iter().map(String::as_str));
            shell::cargo(&root, &cmd)
        }
        Task::Test => {
            setup::all()?;
            test(&root)
        }
        Task::Dist { debug } => {
            setup::all()?;
            dist::build(&root, debug).map(|_| ())
        }
        Task::Fuzz { target, secs } => {
            setup::toolchain()?;
            fuzz::run(&root, target.as_deref(), secs)
        }
        Task::Soak {
            minutes,
            loss_permille,
        } => {
            setup::all()?;
            soak::run(&root, minutes, loss_permille)
        }
        Task::Bench { which } => {
            setup::all()?;
            bench::run(&root, &which)
        }
    }
}

fn test(root: &std::path::Path) -> Result<()> {
    // Unit tests and the BPF packet table (loads the program: needs root).
    shell::cargo(
        root,
        &[
            "test",
            "-p",
            "balancer-common",
            "-p",
            "balancer",
            "-p",
            "xtask",
        ],
    )?;
    // The namespace tests drive the real binary.
    shell::cargo(
        root,
        &[
            "build",
            "-p",
            "balancer",
            "--bins",
            "--examples",
            "--features",
            "testkit",
        ],
    )?;
    let bin = root.join("target/debug/balancer");
    // The package test installs what `dist` builds, from the same binary.
    let deb = dist::build(root, true)?;
    shell::cargo_env(
        root,
        &["test", "-p", "balancer-tests", "--", "--test-threads=2"],
        &[
            ("BALANCER_BIN", bin.as_os_str()),
            ("BALANCER_DEB", deb.as_os_str()),
        ],
    )
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}
