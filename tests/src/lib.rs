//! Namespace harness for end-to-end tests and benchmarks. A test builds a
//! [`Topology`] (client, balancer and backend namespaces joined by veth and a
//! bridge, addresses from 198.18.0.0/15 and `fd00::/8`), starts real processes
//! inside it, and everything is torn down by `Drop`, also when the test
//! panics. Nothing is ever addressed or routed in the root namespace.

pub mod client;
pub mod config;
pub mod l2;
pub mod netns;
pub mod nginx;
pub mod process;
pub mod sys;
pub mod topology;

pub use netns::Netns;
pub use process::Process;
pub use topology::Topology;

/// Path of the balancer binary under test: `BALANCER_BIN` (set by `cargo
/// xtask test`), else the workspace's debug build.
#[must_use]
pub fn balancer_bin() -> std::path::PathBuf {
    std::env::var_os("BALANCER_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/balancer"),
        std::path::PathBuf::from,
    )
}
