//! Data planes that live outside the userspace proxy. Today: the XDP
//! program's loader.

pub mod xdp;
