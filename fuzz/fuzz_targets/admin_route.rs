//! The `admin_route` target: `balancer::fuzzing::admin_route` over libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::admin_route(data));
