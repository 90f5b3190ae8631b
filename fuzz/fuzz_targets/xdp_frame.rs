//! The `xdp_frame` target: `balancer::fuzzing::xdp_frame` over libFuzzer's
//! inputs (loads the XDP program: run as root).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::xdp_frame(data));
