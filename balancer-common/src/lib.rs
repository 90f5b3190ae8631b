//! Layouts and functions shared by the XDP program (`balancer-ebpf`) and the
//! daemon (`balancer`). Everything here is `no_std`, `#[repr(C)]` where it
//! crosses the kernel boundary, and versioned by map name, so kernel and
//! userspace can never drift apart silently.
#![no_std]

pub mod bench;
pub mod diag;
pub mod guard;
pub mod hash;
pub mod maps;
pub mod relay;
pub mod stats;

pub use hash::{FlowTuple, addr_hash, flow_hash};
pub use stats::Counter;
