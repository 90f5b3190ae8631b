//! The balancer daemon as a library: the binary (`main.rs`) only parses the
//! command line and calls into here, so tests and benchmarks drive the same
//! code.

pub mod config;
pub mod select;
