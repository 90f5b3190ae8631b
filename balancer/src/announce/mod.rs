//! Announcing VIPs for scale-out (`announce` in the config): the daemon
//! holds the address of each VIP this host may serve on an interface of
//! its own, and BIRD's `protocol direct` on that interface exports exactly
//! those addresses to the router, so the announcement state lives in the
//! kernel and a withdraw is one netlink message. [`decide`] says which
//! addresses to hold (health, hold-down, withdrawn or not); [`kernel`] is
//! the netlink side; [`plane`] starts the task ([`task`]) the control loop
//! feeds; [`control`] holds the handles the admin API and the daemon use;
//! [`report`] says what is announced and why.

pub mod control;
pub mod decide;
pub mod kernel;
pub mod plane;
pub mod report;
mod task;
