//! The XDP programs' packet tests, one file per concern: crafted frames
//! through the loaded, unattached programs via `BPF_PROG_TEST_RUN`, with
//! maps set up by the same writer the daemon uses (shared set-up in
//! [`super::testkit`]). They need root (`CAP_BPF`); `cargo xtask test` runs
//! as root. `parse` has no VIP, so every frame must pass unchanged;
//! `balance`, `edge`, `state` and `redirect` check where frames go and that
//! both planes agree; `guard` and `cookie` the drops and SYN cookies;
//! `decap` the tunnel end; `diag` what the programs report, and at which level; `pin` restarts over pinned maps; `harness` the
//! benchmark's frame-restoring harness.

mod balance;
mod cookie;
mod decap;
mod diag;
mod edge;
mod guard;
mod harness;
mod parse;
mod pin;
mod redirect;
mod state;
