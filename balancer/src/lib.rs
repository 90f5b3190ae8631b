//! The balancer daemon as a library: the binary (`main.rs` and its `cli/`)
//! only parses the command line and calls into here, so tests and benchmarks
//! drive the same code. Unsafe code is confined to the splice/pipe code and
//! the XDP loader, each with a `SAFETY:` note.
#![deny(unsafe_code)]

pub mod admin;
pub mod announce;
pub mod config;
pub mod dataplane;
pub mod decap;
pub mod demo;
pub mod discover;
pub mod explain;
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod logging;
pub mod proxy;
pub mod proxy_protocol;
pub mod publish;
pub mod reload;
pub mod runtime;
pub mod select;
pub mod server;
pub mod status;
pub mod summary;
pub mod tls;
